# loom_bpf_object(NAME SOURCE [INCLUDES dir...])
# Compiles SOURCE (an x.bpf.c) with clang -target bpf and generates a libbpf skeleton
# with `bpftool gen skeleton` at build time. Creates an INTERFACE target NAME whose
# include directory holds NAME.skel.h; link it and include "NAME.skel.h".
find_program(LOOM_CLANG clang REQUIRED)
find_program(LOOM_BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

function(loom_bpf_object name source)
  cmake_parse_arguments(ARG "" "" "INCLUDES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  set(include_flags -I${PROJECT_SOURCE_DIR}/ebpf/include -I${CMAKE_CURRENT_SOURCE_DIR})
  foreach(dir ${ARG_INCLUDES})
    list(APPEND include_flags -I${dir})
  endforeach()
  # Debian puts asm/ headers under the multiarch directory.
  list(APPEND include_flags -I/usr/include/${CMAKE_LIBRARY_ARCHITECTURE})
  get_filename_component(src_abs ${source} ABSOLUTE)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${LOOM_CLANG} -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86
            ${include_flags} -MD -MF ${obj}.d -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs}
    # Headers the object includes (ebpf/include/*.h) rebuild it too.
    DEPFILE ${obj}.d
    COMMENT "BPF ${name}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${LOOM_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}"
    VERBATIM)
  add_custom_target(${name}_skel DEPENDS ${skel})
  add_library(${name} INTERFACE)
  add_dependencies(${name} ${name}_skel)
  target_include_directories(${name} INTERFACE ${out_dir} ${PROJECT_SOURCE_DIR}/ebpf/include)
  target_link_libraries(${name} INTERFACE PkgConfig::LIBBPF)
endfunction()
