// Umbrella header: everything a C++ user of l2norm needs.
#pragma once

#include "l2norm/device.hpp"
#include "l2norm/dtype.hpp"
#include "l2norm/encoder.hpp"
#include "l2norm/error.hpp"
#include "l2norm/ops.hpp"
#include "l2norm/registry.hpp"
#include "l2norm/tensor.hpp"
#include "l2norm/version.hpp"
