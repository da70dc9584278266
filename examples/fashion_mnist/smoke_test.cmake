# Smoke test of fashion_mnist: a few steps on a subset, JSON metrics checked; a resumed run; and bad
# data (missing, truncated) must exit with status 2.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(subset --model cnn --train-subset 2000 --test-subset 500 --batch-size 250 --seed 11 --epsilon 3)
set(common ${subset} --epochs 2)

# Resumes the run in ${WORK_DIR}/run with the given flags; fails unless it exits 0. Sets `epsilon_out`
# to the epsilon of its metrics and `stdout_out` to what it printed.
function(resume_run epsilon_out stdout_out)
  execute_process(COMMAND ${BINARY} ${ARGN} --run-dir ${WORK_DIR}/run --resume --metrics-out ${WORK_DIR}/resumed.json
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "resume with ${ARGN} failed (${rc}):\n${out}\n${err}")
  endif()
  file(READ ${WORK_DIR}/resumed.json metrics)
  string(JSON value GET "${metrics}" epsilon)
  set(${epsilon_out} ${value} PARENT_SCOPE)
  set(${stdout_out} "${out}" PARENT_SCOPE)
endfunction()

execute_process(COMMAND ${BINARY} ${common} --metrics-out ${WORK_DIR}/metrics.json --plot ${WORK_DIR}/plot.svg
                        --run-dir ${WORK_DIR}/run --checkpoint-every 5
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fashion_mnist failed (${rc}):\n${out}\n${err}")
endif()
file(READ ${WORK_DIR}/metrics.json metrics)
foreach(key test_accuracy epsilon delta steps noise_multiplier seconds)
  string(JSON value ERROR_VARIABLE missing GET "${metrics}" ${key})
  if(missing)
    message(FATAL_ERROR "metrics.json has no ${key}: ${metrics}")
  endif()
endforeach()
string(JSON accuracy GET "${metrics}" test_accuracy)
string(JSON epsilon GET "${metrics}" epsilon)
if(accuracy LESS 0.3)
  message(FATAL_ERROR "accuracy ${accuracy} after 2 epochs on 2000 examples is below 0.3")
endif()
if(epsilon GREATER 3.0001)
  message(FATAL_ERROR "epsilon ${epsilon} exceeds the target 3")
endif()
file(READ ${WORK_DIR}/plot.svg svg)
string(FIND "${svg}" "<polyline" has_line)
if(has_line EQUAL -1)
  message(FATAL_ERROR "plot.svg has no curve")
endif()

# --resume of a finished run continues nowhere and reports the same epsilon.
resume_run(epsilon_again out ${common})
if(NOT epsilon_again EQUAL epsilon)
  message(FATAL_ERROR "resuming a finished run changed epsilon from ${epsilon} to ${epsilon_again}")
endif()

# A resume that only makes the run longer is accepted and says so; the ledger charges the new steps.
resume_run(epsilon_longer out ${subset} --epochs 3)
string(FIND "${out}" "only its length changed" said)
if(said EQUAL -1)
  message(FATAL_ERROR "a longer resume did not say so:\n${out}")
endif()
if(NOT epsilon_longer GREATER epsilon)
  message(FATAL_ERROR "the longer run reports epsilon ${epsilon_longer}, not more than ${epsilon}")
endif()

# A resumed run with other settings is refused.
execute_process(COMMAND ${BINARY} ${common} --learning-rate 1 --run-dir ${WORK_DIR}/run --resume
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
string(FIND "${err}" "settings.learning_rate was 4.0, now 1.0" named)
if(NOT rc EQUAL 2 OR named EQUAL -1)
  message(FATAL_ERROR "resume with different settings exited ${rc}, expected 2 naming the change: ${err}")
endif()

# Missing and truncated data files.
execute_process(COMMAND ${BINARY} ${common} --data-dir ${WORK_DIR}/nothing --run-dir ${WORK_DIR}/run_missing RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "missing data exited ${rc}, expected 2: ${err}")
endif()
file(MAKE_DIRECTORY ${WORK_DIR}/broken)
foreach(name train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
  file(WRITE ${WORK_DIR}/broken/${name} "\x00\x00\x08\x03")
endforeach()
execute_process(COMMAND ${BINARY} ${common} --data-dir ${WORK_DIR}/broken --run-dir ${WORK_DIR}/run_broken RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "truncated data exited ${rc}, expected 2: ${err}")
endif()
if(EXISTS ${WORK_DIR}/run_missing OR EXISTS ${WORK_DIR}/run_broken)
  message(FATAL_ERROR "a run refused for its data left a run directory behind")
endif()
# The linear head on scattering features, tuned on a validation split: the metrics report the
# validation accuracy and no test accuracy (the test set is not touched), and it learns; the DP
# feature statistics are released once, charged, and a resume reads them back instead of again (noise
# multiplier 2: on 1,500 examples each released mean is off by sigma C / N = 0.2 standard deviations).
execute_process(COMMAND ${BINARY} --train-subset 2000 --batch-size 250 --seed 11 --epochs 2 --model scatter-linear --validation 500 --learning-rate 2 --ema 0.9 --feature-stats-noise 2
                        --run-dir ${WORK_DIR}/run_scatter --metrics-out ${WORK_DIR}/scatter.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fashion_mnist --model scatter-linear failed (${rc}):\n${out}\n${err}")
endif()
file(READ ${WORK_DIR}/scatter.json metrics)
string(JSON scatter_accuracy GET "${metrics}" validation_accuracy)
string(JSON scatter_examples GET "${metrics}" training_examples)
string(JSON test_value ERROR_VARIABLE no_test GET "${metrics}" test_accuracy)
if(scatter_accuracy LESS 0.5 OR NOT scatter_examples EQUAL 1500 OR NOT no_test)
  message(FATAL_ERROR "scatter-linear: validation accuracy ${scatter_accuracy} (expected >= 0.5), "
                      "${scatter_examples} training examples (expected 1500), test accuracy '${test_value}' "
                      "(expected none):\n${metrics}")
endif()
string(FIND "${out}" "scattering features of 1500 training images" said)
if(said EQUAL -1)
  message(FATAL_ERROR "scatter-linear did not report its feature extraction:\n${out}")
endif()
file(READ ${WORK_DIR}/run_scatter/ledger.json ledger)
string(JSON releases LENGTH "${ledger}" releases)
string(JSON release_sigma GET "${ledger}" releases 0)
string(FIND "${out}" "release.json: every feature's noisy sum" listed)
if(NOT EXISTS ${WORK_DIR}/run_scatter/release.json OR NOT releases EQUAL 1 OR NOT release_sigma EQUAL 2
   OR listed EQUAL -1)
  message(FATAL_ERROR "the feature statistics were not released, charged and listed once: ledger releases "
                      "'${releases}'\n${out}")
endif()
file(READ ${WORK_DIR}/run_scatter/release.json released_before)
execute_process(COMMAND ${BINARY} --train-subset 2000 --batch-size 250 --seed 11 --epochs 3 --model scatter-linear --validation 500 --learning-rate 2 --ema 0.9 --feature-stats-noise 2
                        --run-dir ${WORK_DIR}/run_scatter --resume
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(READ ${WORK_DIR}/run_scatter/ledger.json ledger)
string(JSON releases LENGTH "${ledger}" releases)
file(READ ${WORK_DIR}/run_scatter/release.json released_after)
if(NOT rc EQUAL 0 OR NOT releases EQUAL 1 OR NOT released_before STREQUAL released_after)
  message(FATAL_ERROR "resuming the scattering run with its released statistics failed (${rc}), ledger releases "
                      "'${releases}':\n${out}\n${err}")
endif()

# The scattering head's default: its channels whitened with a released (and charged) second-moment
# matrix; the release is listed, and the two releases together are refused with status 2.
execute_process(COMMAND ${BINARY} --train-subset 2000 --batch-size 250 --seed 11 --epochs 1 --validation 500
                        --learning-rate 2 --run-dir ${WORK_DIR}/run_whiten --metrics-out ${WORK_DIR}/whiten.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fashion_mnist with its default whitening failed (${rc}):\n${out}\n${err}")
endif()
file(READ ${WORK_DIR}/whiten.json metrics)
string(JSON whiten_accuracy GET "${metrics}" validation_accuracy)
file(READ ${WORK_DIR}/run_whiten/ledger.json ledger)
string(JSON releases LENGTH "${ledger}" releases)
string(FIND "${out}" "channels' noisy second-moment matrix" listed)
if(whiten_accuracy LESS 0.5 OR NOT releases EQUAL 1 OR listed EQUAL -1 OR NOT EXISTS ${WORK_DIR}/run_whiten/release.json)
  message(FATAL_ERROR "the default whitening was not released, charged and listed once (validation accuracy "
                      "${whiten_accuracy}, ledger releases '${releases}'):\n${out}")
endif()
execute_process(COMMAND ${BINARY} --train-subset 2000 --whiten-noise 3 --feature-stats-noise 3
                        --run-dir ${WORK_DIR}/run_two_releases RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
string(FIND "${err}" "a run makes one release" named)
if(NOT rc EQUAL 2 OR named EQUAL -1 OR EXISTS ${WORK_DIR}/run_two_releases)
  message(FATAL_ERROR "two releases in one run exited ${rc}, expected 2 with a reason and no run directory: ${err}")
endif()

message(STATUS "fashion_mnist smoke test passed: accuracy ${accuracy}, epsilon ${epsilon}, "
               "scatter-linear validation accuracy ${scatter_accuracy}, whitened ${whiten_accuracy}")
