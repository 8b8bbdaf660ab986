// SPDX-License-Identifier: MIT
// Run under mpirun -np 3: rank 2 registers one function more than the
// others (as another build of the program would), so init must refuse the
// start on rank 0 with RegistryMismatch naming rank 2 and that function,
// and every rank must still exit 0. Prints "refused: <what()>" on success.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <procpool/mpi/mpi.hpp>

namespace {
int only_on_rank_two(int x) { return x; }
}  // namespace

int main(int argc, char** argv) {
  // mpirun tells each process its rank before MPI starts.
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank && std::string(rank) == "2") procpool::register_function("only_on_rank_two", &only_on_rank_two);
  try {
    procpool::mpi::init(argc, argv);
  } catch (const procpool::mpi::RegistryMismatch& e) {
    std::string what = e.what();
    bool right = e.rank() == 2 && what.find("only_on_rank_two") != std::string::npos &&
                 what.find("MPI rank 2") != std::string::npos;
    std::printf("refused: %s\n", e.what());
    return right ? 0 : 1;
  }
  std::printf("the start was not refused\n");
  procpool::mpi::finalize();
  return 1;
}
