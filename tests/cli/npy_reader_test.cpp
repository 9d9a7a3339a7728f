// The .npy and .fvecs readers: valid files of every version, dtype and rank, and the malformed
// corpus of /work/shared/NUMERICS.md, each rejected with a clear message and no large allocation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "allocation_tracker.hpp"
#include "fvecs.hpp"
#include "l2norm/error.hpp"
#include "npy.hpp"
#include "npy_bytes.hpp"
#include "row_io.hpp"

namespace l2norm::io {
namespace {

using testing::as_bytes;
using testing::fvecs_image;
using testing::npy_image;

std::string dict(const std::string& descr, const std::string& shape,
                 const std::string& fortran = "False") {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }\n";
}

ArrayInfo read(const std::vector<std::byte>& bytes, std::optional<ElementType> declared = {},
               const std::string& name = "test.npy") {
  const MemorySource source(name, bytes);
  return read_array_info(source, declared);
}

TEST(NpyReader, ReadsEveryVersion) {
  for (const int major : {1, 2, 3}) {
    const ArrayInfo info = read(npy_image(major, 0, dict("<f4", "(3, 4)"), 48));
    EXPECT_EQ(info.npy_major_version, major);
    EXPECT_EQ(info.layout.rows, 3);
    EXPECT_EQ(info.layout.dim, 4);
    EXPECT_EQ(info.layout.data_offset, (major == 1 ? 10u : 12u) + dict("<f4", "(3, 4)").size());
  }
}

TEST(NpyReader, ReadsEveryElementType) {
  EXPECT_EQ(read(npy_image(1, 0, dict("<f4", "(2,)"), 8)).layout.element, ElementType::f32);
  EXPECT_EQ(read(npy_image(1, 0, dict("<f2", "(2,)"), 4)).layout.element, ElementType::f16);
  EXPECT_EQ(read(npy_image(1, 0, dict("<f8", "(2,)"), 16)).layout.element, ElementType::f64);
  EXPECT_EQ(read(npy_image(1, 0, dict("<V2", "(2,)"), 4), ElementType::bf16).layout.element,
            ElementType::bf16);
  EXPECT_EQ(read(npy_image(1, 0, dict("|V2", "(2,)"), 4), ElementType::bf16).layout.element,
            ElementType::bf16);
}

TEST(NpyReader, RowsAreTheProductOfLeadingDims) {
  struct Case {
    std::string shape;
    std::int64_t rows, dim, elements;
  };
  const Case cases[] = {{"(7,)", 1, 7, 7},          {"(3, 5)", 3, 5, 15}, {"(2, 3, 4)", 6, 4, 24},
                        {"(2, 1, 3, 4)", 6, 4, 24}, {"(0, 8)", 0, 8, 0},  {"(4, 0, 8)", 0, 8, 0}};
  for (const Case& c : cases) {
    const ArrayInfo info =
        read(npy_image(1, 0, dict("<f2", c.shape), static_cast<std::size_t>(c.elements) * 2));
    EXPECT_EQ(info.layout.rows, c.rows) << c.shape;
    EXPECT_EQ(info.layout.dim, c.dim) << c.shape;
    EXPECT_EQ(shape_text(info.shape), c.shape) << c.shape;
  }
}

TEST(NpyReader, AcceptsHeaderSpellingVariants) {
  const std::string headers[] = {
      "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2, 2)}",
      "{'shape': (2, 2), 'descr': '<f4', 'fortran_order': False}",
      "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , 2 , ) , }      \n"};
  for (const std::string& header : headers) {
    EXPECT_EQ(read(npy_image(1, 0, header, 16)).layout.rows, 2) << header;
  }
}

TEST(NpyWriter, HeaderIsAlignedAndReadsBack) {
  const std::vector<std::vector<std::int64_t>> shapes = {{5}, {1000, 384}, {2, 3, 4}, {0, 7}};
  for (const ElementType element : {ElementType::f32, ElementType::f16, ElementType::bf16}) {
    for (const auto& shape : shapes) {
      std::vector<std::byte> bytes = make_npy_header(element, shape);
      EXPECT_EQ(bytes.size() % 64, 0u);
      EXPECT_EQ(bytes[6], std::byte{1});
      EXPECT_EQ(bytes.back(), std::byte{'\n'});
      std::int64_t elements = 1;
      for (const std::int64_t size : shape) elements *= size;
      bytes.resize(bytes.size() + static_cast<std::size_t>(elements) * element_size(element));
      const ArrayInfo info = read(bytes, element);
      EXPECT_EQ(info.shape, shape);
      EXPECT_EQ(info.layout.element, element);
      EXPECT_EQ(info.layout.data_offset % 64, 0u);
    }
  }
}

TEST(NpyWriter, LongHeadersUseVersion2) {
  const std::vector<std::int64_t> shape(30000, 1);
  std::vector<std::byte> bytes = make_npy_header(ElementType::f32, shape);
  EXPECT_EQ(bytes[6], std::byte{2});
  EXPECT_EQ(bytes.size() % 64, 0u);
  bytes.resize(bytes.size() + 4);
  const ArrayInfo info = read(bytes);
  EXPECT_EQ(info.npy_major_version, 2);
  EXPECT_EQ(info.shape.size(), 30000u);
  EXPECT_EQ(info.layout.rows, 1);
}

TEST(NpyWriter, LargeShapesHaveNoDigitGrouping) {
  const std::vector<std::byte> bytes = make_npy_header(ElementType::f32, {{1234567890123, 4096}});
  const std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  EXPECT_NE(text.find("(1234567890123, 4096)"), std::string::npos) << text;
}

struct MalformedCase {
  const char* label;
  std::vector<std::byte> bytes;
  const char* message;
  std::optional<ElementType> declared = std::nullopt;
};

std::vector<MalformedCase> malformed_npy_corpus() {
  const std::string f4 = dict("<f4", "(2, 3)");
  std::vector<std::byte> v2_huge_length = as_bytes("\x93NUMPY\x02");
  v2_huge_length.push_back(std::byte{0});
  for (const std::byte b : {std::byte{0xF0}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}}) {
    v2_huge_length.push_back(b);
  }
  v2_huge_length.resize(v2_huge_length.size() + 100, std::byte{' '});
  std::vector<std::byte> twelve_bytes = npy_image(1, 0, "", 2);
  twelve_bytes[8] = std::byte{0xff};
  twelve_bytes[9] = std::byte{0xff};
  std::vector<std::byte> bad_magic = npy_image(1, 0, f4, 24);
  bad_magic[1] = std::byte{'n'};
  std::vector<std::byte> v1_past_end = npy_image(1, 0, f4, 24);
  v1_past_end[8] = std::byte{0xff};
  v1_past_end[9] = std::byte{0xff};
  return {
      {"empty file", {}, "too short"},
      {"twelve bytes claiming a 64 KiB header", twelve_bytes, "runs past the end"},
      {"bad magic", bad_magic, "bad magic"},
      {"unknown version 4.0", npy_image(4, 0, f4, 24), "unsupported .npy format version 4.0"},
      {"unknown version 1.1", npy_image(1, 1, f4, 24), "version 1.1"},
      {"header length past end", v1_past_end, "runs past the end of the file"},
      {"v2 length 0xFFFFFFF0", v2_huge_length, "header length 4294967280 runs past the end"},
      {"header not a dict", npy_image(1, 0, "[1, 2, 3]\n", 0), "header is a list, expected a dict"},
      {"header not a literal", npy_image(1, 0, "descr=<f4 shape=2,3\n", 24),
       "not a valid Python literal"},
      {"missing descr", npy_image(1, 0, "{'fortran_order': False, 'shape': (2, 3)}", 24),
       "missing the key 'descr'"},
      {"missing shape", npy_image(1, 0, "{'descr': '<f4', 'fortran_order': False}", 24),
       "missing the key 'shape'"},
      {"missing fortran_order", npy_image(1, 0, "{'descr': '<f4', 'shape': (2, 3)}", 24),
       "missing the key 'fortran_order'"},
      {"extra key",
       npy_image(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", 24),
       "unexpected key 'x'"},
      {"negative shape", npy_image(1, 0, dict("<f4", "(-2, 3)"), 24), "negative entry -2"},
      {"non-integer shape", npy_image(1, 0, dict("<f4", "(2.5, 3)"), 24), "only decimal integers"},
      {"string shape", npy_image(1, 0, dict("<f4", "('2', 3)"), 24), "non-integer entry '2'"},
      {"shape not a tuple", npy_image(1, 0, dict("<f4", "[2, 3]"), 24), "expected a tuple"},
      {"scalar shape", npy_image(1, 0, dict("<f4", "()"), 4), "scalar"},
      {"zero dim", npy_image(1, 0, dict("<f4", "(3, 0)"), 0), "last dimension of 0"},
      {"huge shape entry", npy_image(1, 0, dict("<f4", "(99999999999999999999, 3)"), 24),
       "too large for a 64-bit size"},
      {"shape product overflows", npy_image(1, 0, dict("<f4", "(4294967296, 4294967296)"), 24),
       "overflows a 64-bit byte count"},
      {"shape times itemsize overflows", npy_image(1, 0, dict("<f8", "(2305843009213693952,)"), 24),
       "overflows a 64-bit byte count"},
      {"huge shape, short file", npy_image(1, 0, dict("<f4", "(1000000000, 1000)"), 24),
       "truncated data"},
      {"truncated data", npy_image(1, 0, f4, 23), "truncated data"},
      {"trailing bytes", npy_image(1, 0, f4, 25), "1 trailing bytes"},
      {"object descr", npy_image(1, 0, dict("|O", "(2, 3)"), 48), "unsupported descr '|O'"},
      {"structured descr",
       npy_image(1, 0,
                 "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, 'shape': (2,)}",
                 16),
       "structured dtype"},
      {"big-endian", npy_image(1, 0, dict(">f4", "(2, 3)"), 24), "big-endian"},
      {"fortran order", npy_image(1, 0, dict("<f4", "(2, 3)", "True"), 24),
       "fortran_order is True"},
      {"fortran order not bool", npy_image(1, 0, dict("<f4", "(2, 3)", "0"), 24),
       "expected True or False"},
      {"V2 without --in-dtype", npy_image(1, 0, dict("<V2", "(2, 3)"), 12), "pass --in-dtype bf16"},
      {"declared dtype mismatch", npy_image(1, 0, f4, 24), "does not match descr",
       ElementType::f16},
      {"int descr", npy_image(1, 0, dict("<i4", "(2, 3)"), 24), "unsupported descr '<i4'"},
  };
}

TEST(NpyReader, MalformedCorpusIsRejectedCleanly) {
  for (const MalformedCase& c : malformed_npy_corpus()) {
    testing::reset_largest_allocation();
    try {
      read(c.bytes, c.declared, "case.npy");
      ADD_FAILURE() << c.label << ": accepted";
    } catch (const Error& error) {
      const std::string message = error.what();
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << c.label << ": " << message;
      EXPECT_EQ(message.rfind("case.npy: ", 0), 0u) << c.label << ": " << message;
      EXPECT_NE(message.find(c.message), std::string::npos) << c.label << ": " << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << c.label << ": " << message;
    }
    EXPECT_LT(testing::largest_allocation(), 4096u) << c.label;
  }
}

TEST(NpyReader, HeaderOverTheLimitIsRejectedBeforeAllocating) {
  const std::string header = dict("<f4", "(1,)") + std::string(kMaxNpyHeaderBytes, ' ');
  const std::vector<std::byte> bytes = npy_image(2, 0, header, 4);
  testing::reset_largest_allocation();
  EXPECT_THROW(read(bytes), Error);
  EXPECT_LT(testing::largest_allocation(), 4096u);
}

TEST(RowReader, ReadsRowRangesOfNpy) {
  std::vector<std::byte> bytes = make_npy_header(ElementType::f32, {{4, 3}});
  const std::size_t offset = bytes.size();
  bytes.resize(offset + 48);
  for (int i = 0; i < 12; ++i) {
    const float value = static_cast<float>(i);
    std::memcpy(bytes.data() + offset + 4 * static_cast<std::size_t>(i), &value, 4);
  }
  const MemorySource source("rows.npy", bytes);
  const ArrayInfo info = read_array_info(source, std::nullopt);
  const RowReader reader(source, info.layout);
  std::vector<std::byte> buffer(reader.buffer_bytes(2));
  reader.read_rows(1, 2, buffer);
  float values[6];
  std::memcpy(values, buffer.data(), sizeof values);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], static_cast<float>(3 + i));
  EXPECT_THROW(reader.read_rows(3, 2, buffer), Error);
}

TEST(FvecsReader, ReadsRecordsAndStripsDimensions) {
  const std::vector<std::byte> bytes = fvecs_image({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  const MemorySource source("v.fvecs", bytes);
  const ArrayInfo info = read_array_info(source, std::nullopt);
  EXPECT_EQ(info.format, FileFormat::fvecs);
  EXPECT_EQ(info.layout.rows, 3);
  EXPECT_EQ(info.layout.dim, 3);
  const RowReader reader(source, info.layout);
  std::vector<std::byte> buffer(reader.buffer_bytes(3));
  reader.read_rows(0, 3, buffer);
  float values[9];
  std::memcpy(values, buffer.data(), sizeof values);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(values[i], static_cast<float>(i + 1));
}

TEST(FvecsWriter, PackRowsWritesRecords) {
  const float values[4] = {1, 2, 3, 4};
  const RowLayout layout = output_row_layout(FileFormat::fvecs, ElementType::f32, 2, 2);
  std::vector<std::byte> out(2 * layout.row_stride);
  pack_rows(layout, ElementType::f32, reinterpret_cast<const std::byte*>(values), 2, out.data());
  EXPECT_EQ(out, fvecs_image({{1, 2}, {3, 4}}));
}

TEST(FvecsReader, MalformedCorpusIsRejectedCleanly) {
  std::vector<std::byte> negative = fvecs_image({{1, 2}});
  const std::int32_t minus_three = -3;
  std::memcpy(negative.data(), &minus_three, 4);
  std::vector<std::byte> zero = fvecs_image({{1, 2}});
  std::memset(zero.data(), 0, 4);
  std::vector<std::byte> truncated = fvecs_image({{1, 2}, {3, 4}});
  truncated.pop_back();
  std::vector<std::byte> huge_dim = fvecs_image({{1, 2}});
  const std::int32_t max_dim = std::numeric_limits<std::int32_t>::max();
  std::memcpy(huge_dim.data(), &max_dim, 4);
  const MalformedCase cases[] = {
      {"empty file", {}, "empty .fvecs file"},
      {"three bytes", {std::byte{1}, std::byte{0}, std::byte{0}}, "truncated record"},
      {"negative dim", negative, "dimension -3"},
      {"zero dim", zero, "dimension 0"},
      {"truncated record", truncated, "truncated record"},
      {"huge dim", huge_dim, "truncated record"},
      {"differing dims change the record size", fvecs_image({{1, 2}, {3, 4, 5}}),
       "truncated record"},
  };
  for (const MalformedCase& c : cases) {
    testing::reset_largest_allocation();
    try {
      read(c.bytes, std::nullopt, "case.fvecs");
      ADD_FAILURE() << c.label << ": accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << c.label;
      EXPECT_EQ(std::string(error.what()).rfind("case.fvecs: ", 0), 0u) << error.what();
      EXPECT_NE(std::string(error.what()).find(c.message), std::string::npos) << error.what();
    }
    EXPECT_LT(testing::largest_allocation(), 4096u) << c.label;
  }
}

TEST(FvecsReader, InconsistentDimensionsAreFoundWhileReading) {
  // Records of dims 2, 2, 5 take the bytes of 4 records of dim 2, so the file size looks right
  // and only reading the third record reveals the inconsistency.
  const std::vector<std::byte> bytes = fvecs_image({{1, 2}, {3, 4}, {5, 6, 7, 8, 9}});
  const MemorySource source("mixed.fvecs", bytes);
  const ArrayInfo info = read_array_info(source, std::nullopt);
  EXPECT_EQ(info.layout.rows, 4);
  const RowReader reader(source, info.layout);
  std::vector<std::byte> buffer(reader.buffer_bytes(4));
  EXPECT_NO_THROW(reader.read_rows(0, 2, buffer));
  try {
    reader.read_rows(0, 4, buffer);
    FAIL() << "accepted inconsistent dimensions";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("record 2 has dimension 5, record 0 has 2"),
              std::string::npos)
        << error.what();
  }
}

TEST(FvecsReader, InDtypeOtherThanF32IsRejected) {
  EXPECT_THROW(read(fvecs_image({{1, 2}}), ElementType::f16, "v.fvecs"), Error);
}

TEST(Conversions, NarrowingRoundsAndKeepsSpecials) {
  const double wide[] = {1.0, 0x1.ffffffp127, -1e300, std::nan(""), 0x1.000001p0, 5e-324};
  float narrow[6];
  convert_elements(ElementType::f64, wide, ElementType::f32, narrow, 6);
  EXPECT_EQ(narrow[0], 1.0f);
  EXPECT_EQ(narrow[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(narrow[2], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(narrow[3]));
  EXPECT_EQ(narrow[4], 1.0f);  // a tie, rounded to even
  EXPECT_EQ(narrow[5], 0.0f);
  const float values[] = {1.0f, 65520.0f, std::nanf("")};
  std::uint16_t half[3];
  convert_elements(ElementType::f32, values, ElementType::f16, half, 3);
  EXPECT_EQ(half[0], 0x3c00);
  EXPECT_EQ(half[1], 0x7c00);
  EXPECT_EQ(half[2] & 0x7c00, 0x7c00);
  EXPECT_NE(half[2] & 0x3ff, 0);
}

}  // namespace
}  // namespace l2norm::io
