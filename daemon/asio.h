#pragma once
// GCC 12 in C++20 needs <utility> before Boost.Asio (see ENVIRONMENT.md).
#include <utility>

#include <boost/asio.hpp>
