# Warnings and sanitizers as INTERFACE targets, linked only into our own targets.
option(FACEQ_WERROR "Treat warnings in faceq's own code as errors (tools/test.sh and CI build with it)" OFF)

add_library(faceq_warnings INTERFACE)
target_compile_options(faceq_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(FACEQ_WERROR)
  target_compile_options(faceq_warnings INTERFACE -Werror)
endif()

add_library(faceq_sanitizers INTERFACE)
if(FACEQ_SANITIZE)
  target_compile_options(faceq_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
    # GCC 12 warns falsely in libstdc++'s <regex> under -fsanitize=address
    # (GCC bug 105616): the Release build keeps this warning.
    -Wno-maybe-uninitialized)
  target_link_options(faceq_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
