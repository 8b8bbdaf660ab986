// SPDX-License-Identifier: MIT
// Must not compile, with procpool's one-line reason before cereal's: a
// std::string_view cannot cross processes (cereal has no serialization of
// it; take a std::string).
#include <procpool/procpool.hpp>

#include <string_view>

size_t length(std::string_view text) { return text.size(); }
PROCPOOL_REGISTER(length);

int main() {}
