include(GoogleTest)

# loom_test(NAME LABEL src... LIBS lib...)
# LABEL is unit (no root), privileged (namespaces, netlink, BPF) or bench.
function(loom_test name label)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} loom_testing GTest::gmock GTest::gtest_main)
  set(props LABELS ${label})
  if(label STREQUAL "privileged")
    # Namespaces and kernel state: one test at a time per binary, generous time.
    list(APPEND props RUN_SERIAL FALSE TIMEOUT 600)
  else()
    list(APPEND props TIMEOUT 300)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()
