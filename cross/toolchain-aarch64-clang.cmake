# aarch64 cross build with the host clang and lld; clang finds Debian's
# aarch64 gcc runtime and libc headers from the --target triple.
#   cmake -S kernels -B build/aarch64-clang -DCMAKE_TOOLCHAIN_FILE=cross/toolchain-aarch64-clang.cmake
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-aarch64-common.cmake)
set(CMAKE_C_COMPILER clang)
set(CMAKE_CXX_COMPILER clang++)
set(CMAKE_C_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_CXX_COMPILER_TARGET aarch64-linux-gnu)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=lld")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-fuse-ld=lld")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-fuse-ld=lld")
