# Warnings and sanitizers as INTERFACE targets, linked only into our own targets.
add_library(faceq_warnings INTERFACE)
target_compile_options(faceq_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow)

add_library(faceq_sanitizers INTERFACE)
if(FACEQ_SANITIZE)
  target_compile_options(faceq_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(faceq_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
