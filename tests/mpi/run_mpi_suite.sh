#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs an MPI test program under mpirun on this machine, then checks what it
# left: mpirun's status (every rank exited 0), no process still running the
# program, and the same names in /dev/shm as before.
#   run_mpi_suite.sh <ranks> <program> [args...]
# Environment: MPIRUN_OPTIONS (more options for mpirun, split on spaces);
# RANK_KILLED=1 for a program that kills one of its ranks on purpose (its
# status is then not a rank's: mpirun must still exit 0, as Open MPI does
# with orte_abort_on_non_zero_status 0).
set -uo pipefail
ranks=$1
shift
program=$(readlink -f "$1")
shift
shm_before=$(ls /dev/shm | sort)
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
read -r -a extra <<< "${MPIRUN_OPTIONS:-}"
mpirun "${root[@]}" "${extra[@]}" --oversubscribe -np "$ranks" "$program" "$@"
status=$?
if [ $status -ne 0 ]; then
  echo "run_mpi_suite: mpirun exited with $status" >&2
  exit $status
fi
# The agents' workers are reaped by their agents before MPI_Finalize; give
# the kernel a moment to clear the last exits.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  left=$(pgrep -f -x -- "$program.*" || true)
  [ -z "$left" ] && break
  sleep 0.2
done
if [ -n "$left" ]; then
  echo "run_mpi_suite: processes of $program left running: $left" >&2
  ps -o pid,ppid,args -p $(echo $left | tr ' ' ',') >&2
  exit 1
fi
shm_after=$(ls /dev/shm | sort)
if [ "$shm_before" != "$shm_after" ]; then
  echo "run_mpi_suite: /dev/shm names left:" >&2
  comm -13 <(echo "$shm_before") <(echo "$shm_after") >&2
  exit 1
fi
if [ "${RANK_KILLED:-0}" = 1 ]; then
  echo "run_mpi_suite: every rank exited 0 but the one killed; no process and no /dev/shm name left"
else
  echo "run_mpi_suite: every rank exited 0; no process and no /dev/shm name left"
fi
