# flexnas_add_gtest(NAME name SOURCES a.cpp ... LIBS lib ... [LABELS l ...] [DISCOVER] [TIMEOUT s])
#
# One GoogleTest binary per folder, registered as one ctest case per test SUITE (name.Suite, with
# --gtest_filter=Suite.*), so a failure or a hang is named by its suite while a LibTorch binary
# (~0.7 s to start) still starts once per suite rather than once per test. The suites are read from
# the sources' TEST/TEST_F/TEST_P macros at configure time (parameterised suites match their
# instantiation prefix too). DISCOVER registers each test separately, which is only worth it for
# the LibTorch-free design_space tests.
function(flexnas_add_gtest)
  cmake_parse_arguments(T "DISCOVER" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main flexnas_warnings)
  target_compile_definitions(${T_NAME} PRIVATE
    FLEXNAS_TEST_DATA="${PROJECT_SOURCE_DIR}/tests/data"
    FLEXNAS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 900)
  endif()
  if(T_DISCOVER)
    include(GoogleTest)
    gtest_discover_tests(${T_NAME} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT})
    return()
  endif()
  set(suites "")
  foreach(src ${T_SOURCES})
    if(NOT IS_ABSOLUTE ${src})
      set(src ${CMAKE_CURRENT_SOURCE_DIR}/${src})
    endif()
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})  # new suites re-register
    file(STRINGS ${src} lines REGEX "^(TEST|TEST_F|TEST_P)\\([A-Za-z0-9_]+,")
    foreach(line ${lines})
      string(REGEX REPLACE "^(TEST|TEST_F|TEST_P)\\(([A-Za-z0-9_]+),.*" "\\2" suite "${line}")
      list(APPEND suites ${suite})
    endforeach()
  endforeach()
  list(REMOVE_DUPLICATES suites)
  foreach(suite ${suites})
    add_test(NAME ${T_NAME}.${suite} COMMAND ${T_NAME} --gtest_brief=1 "--gtest_filter=${suite}.*:*/${suite}.*")
    set_tests_properties(${T_NAME}.${suite} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
      FAIL_REGULAR_EXPRESSION "0 tests from 0 test suites ran")
  endforeach()
endfunction()

# flexnas_torch_pch(target): share one precompiled <torch/torch.h> across LibTorch targets.
# The first target that asks builds it; the rest reuse it (PLATFORM.md: halves compile cost).
function(flexnas_torch_pch target)
  get_property(owner GLOBAL PROPERTY FLEXNAS_TORCH_PCH_OWNER)
  if(NOT owner)
    target_precompile_headers(${target} PRIVATE <torch/torch.h>)
    set_property(GLOBAL PROPERTY FLEXNAS_TORCH_PCH_OWNER ${target})
  else()
    target_precompile_headers(${target} REUSE_FROM ${owner})
  endif()
endfunction()

# flexnas_folder_library(folder LIBS dep ...): the static library of one top-level folder,
# flexnas_<folder> with alias flexnas::<folder>, from every .cpp in the folder (and its ops/
# subfolder, if any). LibTorch folders get the shared precompiled header.
function(flexnas_folder_library folder)
  cmake_parse_arguments(F "TORCH" "" "LIBS;EXCLUDE" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/ops/*.cpp)
  foreach(ex ${F_EXCLUDE})
    list(FILTER sources EXCLUDE REGEX "/${ex}$")
  endforeach()
  add_library(flexnas_${folder} STATIC ${sources})
  target_link_libraries(flexnas_${folder} PUBLIC flexnas_warnings ${F_LIBS})
  if(F_TORCH)
    target_link_libraries(flexnas_${folder} PUBLIC ${TORCH_LIBRARIES})
    flexnas_torch_pch(flexnas_${folder})
  endif()
  add_library(flexnas::${folder} ALIAS flexnas_${folder})
endfunction()
