#!/usr/bin/env bash
# Checks that every include between folders of include/dpsgd/ (and src/, cuda/) points down the
# layers of docs/architecture.md: core, then sampling/noise/clipping/accounting/data, then optim and
# cuda, then nn and audit. An include that points up or sideways within a layer fails with its line,
# and so does a public header (outside detail/) that opens a detail namespace.
# Usage: check_layering.sh REPO_ROOT
set -euo pipefail
root=${1:-.}
declare -A rank=([core]=0 [sampling]=1 [noise]=1 [clipping]=1 [accounting]=1 [data]=1 [features]=1
                 [optim]=2 [cuda]=2 [nn]=3 [audit]=3 [torch]=3 [mpi]=3)
bad=0
while IFS= read -r header; do
  folder=$(echo "$header" | sed -E 's|.*/include/dpsgd/([a-z_]+)/.*|\1|')
  [ -n "${rank[$folder]+x}" ] || { echo "check_layering: $header is in an unknown folder $folder"; bad=1; continue; }
  while IFS= read -r target; do
    [ "$target" = "$folder" ] && continue
    [ -n "${rank[$target]+x}" ] || { echo "check_layering: $header includes unknown folder $target"; bad=1; continue; }
    if [ "${rank[$target]}" -ge "${rank[$folder]}" ]; then
      echo "check_layering: $header ($folder, layer ${rank[$folder]}) includes $target (layer ${rank[$target]})"
      bad=1
    fi
  done < <(grep -o '#include "dpsgd/[a-z_]*/' "$header" | sed 's|#include "dpsgd/||;s|/$||' | sort -u)
done < <(find "$root/include/dpsgd" -mindepth 2 -name '*.hpp' -o -mindepth 2 -name '*.cuh' | sort)
while IFS= read -r header; do
  case "$header" in */detail/*) continue ;; esac
  if grep -nE 'namespace (dpsgd::(cuda::)?)?detail\b' "$header"; then
    echo "check_layering: $header is public but declares detail symbols (move them under a detail/ folder)"
    bad=1
  fi
done < <(find "$root/include/dpsgd" -name '*.hpp' -o -name '*.cuh' | sort)
[ "$bad" -eq 0 ] && echo "check_layering: every include between folders points down the layers; no public header declares detail symbols"
exit "$bad"
