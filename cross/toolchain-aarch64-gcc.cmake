# aarch64 cross build with Debian's gcc-aarch64-linux-gnu.
#   cmake -S kernels -B build/aarch64-gcc -DCMAKE_TOOLCHAIN_FILE=cross/toolchain-aarch64-gcc.cmake
include(${CMAKE_CURRENT_LIST_DIR}/toolchain-aarch64-common.cmake)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
