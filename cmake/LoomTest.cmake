include(GoogleTest)

# loom_test(NAME LABEL src... LIBS lib... [DEPENDS binary...])
# LABEL is unit (no root), privileged (namespaces, netlink, BPF) or bench.
# DEPENDS names the binaries the test execs (loomd, loomctl, loom), built before it.
function(loom_test name label)
  cmake_parse_arguments(ARG "" "" "LIBS;DEPENDS" ${ARGN})
  add_executable(${name} ${ARG_UNPARSED_ARGUMENTS})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} loom_testing GTest::gmock GTest::gtest_main)
  foreach(bin ${ARG_DEPENDS})
    if(TARGET ${bin})
      add_dependencies(${name} ${bin})
    endif()
  endforeach()
  set(props LABELS ${label})
  if(label STREQUAL "privileged")
    # Namespaces and kernel state: one test at a time per binary, generous time.
    list(APPEND props RUN_SERIAL FALSE TIMEOUT 600)
  else()
    list(APPEND props TIMEOUT 300)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()
