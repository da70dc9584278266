# Smoke test of fashion_mnist: a few steps on a subset, JSON metrics checked; a resumed run; and bad
# data (missing, truncated) must exit with status 2.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(common --train-subset 2000 --test-subset 500 --epochs 2 --batch-size 250 --seed 11 --epsilon 3)

execute_process(COMMAND ${BINARY} ${common} --metrics-out ${WORK_DIR}/metrics.json --plot ${WORK_DIR}/plot.svg
                        --checkpoint ${WORK_DIR}/ckpt.json --checkpoint-every 5
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
execute_process(COMMAND ${BINARY} ${common} --checkpoint ${WORK_DIR}/ckpt.json --resume --metrics-out ${WORK_DIR}/again.json
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "resume failed (${rc}):\n${out}\n${err}")
endif()

# A resumed run with other settings is refused.
execute_process(COMMAND ${BINARY} ${common} --learning-rate 1 --checkpoint ${WORK_DIR}/ckpt.json --resume
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "resume with different settings exited ${rc}, expected 2: ${err}")
endif()

# Missing and truncated data files.
execute_process(COMMAND ${BINARY} ${common} --data-dir ${WORK_DIR}/nothing RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "missing data exited ${rc}, expected 2: ${err}")
endif()
file(MAKE_DIRECTORY ${WORK_DIR}/broken)
foreach(name train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
  file(WRITE ${WORK_DIR}/broken/${name} "\x00\x00\x08\x03")
endforeach()
execute_process(COMMAND ${BINARY} ${common} --data-dir ${WORK_DIR}/broken RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "truncated data exited ${rc}, expected 2: ${err}")
endif()
message(STATUS "fashion_mnist smoke test passed: accuracy ${accuracy}, epsilon ${epsilon}")
