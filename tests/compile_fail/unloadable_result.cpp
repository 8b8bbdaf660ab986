// SPDX-License-Identifier: MIT
// Must not compile: the host could not rebuild this result (save() only).
#include <procpool/procpool.hpp>

struct SaveOnly {
  int value = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(value);
  }
};
SaveOnly make() { return {}; }
PROCPOOL_REGISTER(make);

int main() {}
