#include "python_literal.hpp"

#include <gtest/gtest.h>

#include <string>

#include "l2norm/error.hpp"

namespace l2norm::io {
namespace {

TEST(PythonLiteral, ParsesTheDictNumpyWrites) {
  const PyValue value =
      parse_python_literal("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 384), }   \n");
  ASSERT_EQ(value.kind, PyValue::Kind::dict);
  ASSERT_EQ(value.entries.size(), 3u);
  EXPECT_EQ(value.entries[0].key, "descr");
  EXPECT_EQ(value.entries[0].value.text, "<f4");
  EXPECT_EQ(value.entries[1].value.kind, PyValue::Kind::boolean);
  EXPECT_FALSE(value.entries[1].value.boolean);
  const PyValue& shape = value.entries[2].value;
  ASSERT_EQ(shape.kind, PyValue::Kind::tuple);
  ASSERT_EQ(shape.items.size(), 2u);
  EXPECT_EQ(shape.items[0].text, "1000");
  EXPECT_EQ(shape.items[1].text, "384");
}

TEST(PythonLiteral, TupleSpellings) {
  EXPECT_EQ(parse_python_literal("()").items.size(), 0u);
  EXPECT_EQ(parse_python_literal("( )").kind, PyValue::Kind::tuple);
  EXPECT_EQ(parse_python_literal("(5,)").items.size(), 1u);
  EXPECT_EQ(parse_python_literal("(5, 6,)").items.size(), 2u);
  EXPECT_EQ(parse_python_literal("( 5 ,\t6 )").items.size(), 2u);
  // A parenthesized value without a comma is the value itself, as in Python.
  EXPECT_EQ(parse_python_literal("(5)").kind, PyValue::Kind::integer);
}

TEST(PythonLiteral, StringsAndKeywords) {
  EXPECT_EQ(parse_python_literal("\"<f4\"").text, "<f4");
  EXPECT_EQ(parse_python_literal(R"('it\'s')").text, "it's");
  EXPECT_TRUE(parse_python_literal("True").boolean);
  EXPECT_EQ(parse_python_literal("None").kind, PyValue::Kind::none);
  EXPECT_EQ(parse_python_literal("-12").text, "-12");
  EXPECT_EQ(parse_python_literal("[('a', '<f4')]").kind, PyValue::Kind::list);
  EXPECT_EQ(python_repr(parse_python_literal("{'a': (1,), 'b': [True, None]}")),
            "{'a': (1,), 'b': [True, None]}");
}

TEST(PythonLiteral, RejectsGarbageWithAnOffset) {
  const char* bad[] = {
      "",           "{",   "{'a' 1}",  "{'a': 1} x", "{1: 2}", "{'a': 1, 'a': 2}", "'open", "(1 2)",
      "1.5",        "1e3", "0x10",     "007",        "true",   "{'a': b}",         "-",     "'\\n'",
      "{'a': 1,,}", "(,)", "{'a': 1}}"};
  for (const char* text : bad) {
    try {
      parse_python_literal(text);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::invalid_argument) << text;
      EXPECT_NE(std::string(error.what()).find("at offset"), std::string::npos) << error.what();
    }
  }
}

TEST(PythonLiteral, BoundsNesting) {
  const std::string deep = std::string(10000, '(') + std::string(10000, ')');
  try {
    parse_python_literal(deep);
    FAIL() << "accepted a literal nested 10000 deep";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("nested deeper"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace l2norm::io
