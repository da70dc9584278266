# Smoke test of dp_lm on a tiny model: DP training from scratch with metrics, non-private pretraining
# saved to a model file and DP-BiTFiT fine-tuning from it, a resume, and refused setups (exit 2).
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(unshaped --context 24 --heads 2 --layers 1 --train-subset 400 --test-subset 40
             --batch-size 64 --micro-batch 24 --epochs 1 --seed 5)
set(tiny ${unshaped} --d-model 16 --data-dir ${DATA_DIR})

# Runs dp_lm with the given flags; fails unless it exits 0. Sets `metrics_out` to its metrics JSON.
function(run_ok name metrics_out)
  execute_process(COMMAND ${BINARY} ${ARGN} --run-dir ${WORK_DIR}/${name} --metrics-out ${WORK_DIR}/${name}.json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "dp_lm ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  file(READ ${WORK_DIR}/${name}.json metrics)
  set(${metrics_out} "${metrics}" PARENT_SCOPE)
endfunction()

# Runs dp_lm with the given flags and requires exit status 2 with `needle` in its error output.
function(run_refused needle)
  execute_process(COMMAND ${BINARY} ${ARGN} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  string(FIND "${err}" "${needle}" found)
  if(NOT rc EQUAL 2 OR found EQUAL -1)
    message(FATAL_ERROR "dp_lm ${ARGN} exited ${rc}, expected 2 with '${needle}': ${err}")
  endif()
endfunction()

run_ok(scratch metrics ${tiny} --epsilon 3 --plot ${WORK_DIR}/scratch.svg)
foreach(key test_bits_per_char epsilon delta steps noise_multiplier seconds seconds_per_step peak_memory_mb)
  string(JSON value ERROR_VARIABLE missing GET "${metrics}" ${key})
  if(missing)
    message(FATAL_ERROR "metrics have no ${key}: ${metrics}")
  endif()
endforeach()
string(JSON bits GET "${metrics}" test_bits_per_char)
string(JSON epsilon GET "${metrics}" epsilon)
if(epsilon GREATER 3.0001 OR bits GREATER 7.0 OR bits LESS 1.0)
  message(FATAL_ERROR "scratch run: epsilon ${epsilon} (target 3), ${bits} bits/char (uniform is 6.6)")
endif()
file(READ ${WORK_DIR}/scratch.svg svg)
string(FIND "${svg}" "<polyline" has_line)
if(has_line EQUAL -1)
  message(FATAL_ERROR "the plot has no curve")
endif()

# Resuming the finished run reports the same epsilon.
run_ok(scratch again ${tiny} --epsilon 3 --resume)
string(JSON epsilon_again GET "${again}" epsilon)
if(NOT epsilon_again EQUAL epsilon)
  message(FATAL_ERROR "resuming a finished run changed epsilon from ${epsilon} to ${epsilon_again}")
endif()

# Pretraining on the public part (no privacy claimed), then DP-BiTFiT from the saved model.
run_ok(pretrain pretrained ${tiny} --mode pretrain --save-model ${WORK_DIR}/pretrained.json)
string(JSON pretrain_epsilon TYPE "${pretrained}" epsilon)
if(NOT pretrain_epsilon STREQUAL "NULL")
  message(FATAL_ERROR "pretraining on public data reported an epsilon: ${pretrained}")
endif()
run_ok(bitfit tuned ${tiny} --mode finetune --trainable bias --pretrained ${WORK_DIR}/pretrained.json)
string(JSON tuned_epsilon GET "${tuned}" epsilon)
if(tuned_epsilon GREATER 3.0001)
  message(FATAL_ERROR "fine-tuning spent epsilon ${tuned_epsilon} above the target 3")
endif()

run_refused("--pretrained is needed" ${tiny} --mode finetune --run-dir ${WORK_DIR}/bad1)
run_refused("needs --mode finetune" ${tiny} --trainable bias --run-dir ${WORK_DIR}/bad2)
run_refused("holds a model of shape" ${unshaped} --d-model 32 --data-dir ${DATA_DIR} --mode finetune --pretrained ${WORK_DIR}/pretrained.json
            --run-dir ${WORK_DIR}/bad3)
run_refused("cannot read" ${unshaped} --d-model 16 --data-dir ${WORK_DIR}/nothing --run-dir ${WORK_DIR}/bad4)
foreach(name bad1 bad2 bad3 bad4)
  if(EXISTS ${WORK_DIR}/${name})
    message(FATAL_ERROR "a refused run left its directory ${name} behind")
  endif()
endforeach()
message(STATUS "dp_lm smoke test passed: ${bits} bits/char at epsilon ${epsilon}")
