// Records the largest single heap allocation the process makes (global operator new is replaced
// in allocation_tracker.cpp), so parser tests can prove a hostile header costs no big allocation.
#pragma once

#include <cstddef>

namespace l2norm::testing {

void reset_largest_allocation() noexcept;
std::size_t largest_allocation() noexcept;

}  // namespace l2norm::testing
