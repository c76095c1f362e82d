# cuda.cmake: decide whether the CUDA backend is built (SI_CUDA=AUTO|ON|OFF) and enable the
# CUDA language. nvcc 11.8 (Debian's toolkit) rejects g++ 12, so when no host compiler was
# given and nvcc is 11.x, clang++-14 is chosen if present.
include(CheckLanguage)

set(SI_WITH_CUDA OFF)
set(SI_CUDA_ARCHITECTURES "80;86;89;90" CACHE STRING "CUDA architectures to build for")
option(SI_CUDA_RESOURCE_USAGE "Print register/spill usage of every CUDA kernel (--resource-usage)" OFF)

if(NOT SI_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
    find_program(SI_NVCC nvcc)
    if(SI_NVCC)
      execute_process(COMMAND "${SI_NVCC}" --version OUTPUT_VARIABLE SI_NVCC_VERSION_TEXT ERROR_QUIET)
      if(SI_NVCC_VERSION_TEXT MATCHES "release 11\\.")
        find_program(SI_CLANGXX14 clang++-14)
        if(SI_CLANGXX14)
          message(STATUS "nvcc 11.x found: using ${SI_CLANGXX14} as the CUDA host compiler")
          set(CMAKE_CUDA_HOST_COMPILER "${SI_CLANGXX14}" CACHE FILEPATH "CUDA host compiler")
          # check_language(CUDA) runs in a sub-project that only sees the environment.
          set(ENV{CUDAHOSTCXX} "${SI_CLANGXX14}")
        endif()
      endif()
    endif()
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(SI_WITH_CUDA ON)
  elseif(SI_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SI_CUDA=ON but no working CUDA compiler was found (install a CUDA toolkit: scripts/setup)")
  else()
    message(STATUS "No CUDA toolkit found: building without the cuda backend")
  endif()
endif()

if(SI_WITH_CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  # Static cudart: the library loads on machines without the CUDA runtime installed and
  # reports SI_ERR_NO_DEVICE there instead of failing to load.
  set(CMAKE_CUDA_RUNTIME_LIBRARY Static)
  set(CMAKE_CUDA_VISIBILITY_PRESET hidden)
  message(STATUS "CUDA backend: ON (${CMAKE_CUDA_COMPILER_VERSION}, architectures ${SI_CUDA_ARCHITECTURES})")
endif()
