// SPDX-License-Identifier: MIT
#pragma once
// procpool on an MPI job: everything of <procpool/procpool.hpp>, and
// procpool::mpi::init, MpiPool and their errors.
//
//   int main(int argc, char** argv) {
//     procpool::mpi::init(argc, argv);  // rank 0 returns; the others serve calls
//     procpool::mpi::MpiPool pool;
//     long v = pool.submit(work, 3).get();
#include <procpool/procpool.hpp>

#include <procpool/mpi/errors.hpp>
#include <procpool/mpi/init.hpp>
#include <procpool/mpi/mpi_pool.hpp>
