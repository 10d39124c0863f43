# cmake/packaging.cmake — the man page, the bash completion and the Debian
# package (docs/packaging.md), included at the end of CMakeLists.txt.
#
# faceq.1.gz, faceq.bash and _faceq (zsh) are made at build time by the built
# binary from its own command-line definition (`faceq manpage`, `faceq
# completion bash|zsh`: src/cli/cmd_completion.cpp), so they never drift from
# the options.
# `cpack -G DEB` in the build directory then makes faceq_<version>_amd64.deb:
# /usr/bin/faceq (stripped), data/ in /usr/share/faceq, the man page, the
# bash and zsh completions, and — a component of their own that `cmake --install` leaves
# out, since they belong to the system — the systemd unit, /etc/default/faceq
# and the maintainer scripts (packaging/).

# ---------------------------------------------------------------- man page, completion
# The page's date: the configure day, or SOURCE_DATE_EPOCH's (reproducible builds).
string(TIMESTAMP FACEQ_MAN_DATE "%Y-%m-%d" UTC)
set(FACEQ_MAN_PAGE ${CMAKE_CURRENT_BINARY_DIR}/faceq.1)
set(FACEQ_BASH_COMPLETION ${CMAKE_CURRENT_BINARY_DIR}/faceq.bash)
# Written to a temporary file and renamed: a failed run leaves no half page.
add_custom_command(OUTPUT ${FACEQ_MAN_PAGE} ${FACEQ_MAN_PAGE}.gz
  COMMAND sh -c "\"$1\" manpage --date \"$2\" >\"$3.tmp\" && mv \"$3.tmp\" \"$3\"" sh
          $<TARGET_FILE:faceq> ${FACEQ_MAN_DATE} ${FACEQ_MAN_PAGE}
  COMMAND gzip -9nkf ${FACEQ_MAN_PAGE}
  DEPENDS faceq
  COMMENT "Generating the man page faceq.1 from faceq's options"
  VERBATIM)
add_custom_command(OUTPUT ${FACEQ_BASH_COMPLETION}
  COMMAND sh -c "\"$1\" completion bash >\"$2.tmp\" && mv \"$2.tmp\" \"$2\"" sh
          $<TARGET_FILE:faceq> ${FACEQ_BASH_COMPLETION}
  DEPENDS faceq
  COMMENT "Generating the bash completion from faceq's options"
  VERBATIM)
set(FACEQ_ZSH_COMPLETION ${CMAKE_CURRENT_BINARY_DIR}/_faceq)
add_custom_command(OUTPUT ${FACEQ_ZSH_COMPLETION}
  COMMAND sh -c "\"$1\" completion zsh >\"$2.tmp\" && mv \"$2.tmp\" \"$2\"" sh
          $<TARGET_FILE:faceq> ${FACEQ_ZSH_COMPLETION}
  DEPENDS faceq
  COMMENT "Generating the zsh completion from faceq's options"
  VERBATIM)
# Part of every build but the sanitizer one, whose tests run the generators
# under ASan instead (tests/test_cli_completion.cpp).
if(FACEQ_SANITIZE)
  set(FACEQ_DOCS_ALL "")
else()
  set(FACEQ_DOCS_ALL ALL)
endif()
add_custom_target(faceq_docs ${FACEQ_DOCS_ALL} DEPENDS ${FACEQ_MAN_PAGE} ${FACEQ_BASH_COMPLETION} ${FACEQ_ZSH_COMPLETION})

install(FILES ${FACEQ_MAN_PAGE}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${FACEQ_BASH_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME faceq)
install(FILES ${FACEQ_ZSH_COMPLETION} DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs FILES_MATCHING PATTERN "*.md"
        PATTERN screenshots EXCLUDE)
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

# The service: absolute paths, so only in the package.
set(FACEQ_PACKAGING_DIR ${CMAKE_CURRENT_SOURCE_DIR}/packaging)
install(FILES ${FACEQ_PACKAGING_DIR}/faceq.service DESTINATION /lib/systemd/system COMPONENT system
        EXCLUDE_FROM_ALL)
install(FILES ${FACEQ_PACKAGING_DIR}/faceq.default DESTINATION /etc/default RENAME faceq COMPONENT system
        EXCLUDE_FROM_ALL)

# ---------------------------------------------------------------- Debian package
set(CPACK_PACKAGE_NAME faceq)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "faceq maintainers <maintainers@users.noreply.r-seed-02a448a4.example>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "fast, offline face analytics: detect, identify, estimate age and gender")
string(JOIN "\n" CPACK_PACKAGE_DESCRIPTION
    "faceq finds the faces in photos, describes them (landmarks, gender, age,"
    "a 128-D descriptor) and identifies them against a gallery of known"
    "persons, offline: one command-line tool with subcommands and JSON Lines"
    "output, and an HTTP API with a web page (faceq serve), run as the systemd"
    "service faceq.service. Models are downloaded after installation"
    "(faceq download models).")
# A Debian package carries a changelog (Policy 12.7): one entry for this
# version, pointing at the real history.
string(TIMESTAMP FACEQ_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/changelog
     "faceq (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
     "  * Built from faceq's source tree with cpack; its history is the git log.\n\n"
     " -- ${CPACK_PACKAGE_CONTACT}  ${FACEQ_CHANGELOG_DATE}\n")
execute_process(COMMAND gzip -9nf ${CMAKE_CURRENT_BINARY_DIR}/changelog)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION graphics)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps (dpkg-dev) names the packages of every linked library. Not
# OpenCV's imgcodecs, which faceq dlopens by its SONAME on first use
# (src/core/pipeline/imgcodecs_lazy.hpp): its package is looked up here.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(FACEQ_DEB_DEPENDS adduser)
get_target_property(FACEQ_IMGCODECS_LOCATION opencv_imgcodecs IMPORTED_LOCATION_RELEASE)
if(NOT FACEQ_IMGCODECS_LOCATION)
  get_target_property(FACEQ_IMGCODECS_LOCATION opencv_imgcodecs IMPORTED_LOCATION_NONE)
endif()
if(FACEQ_IMGCODECS_LOCATION)
  get_filename_component(FACEQ_IMGCODECS_REAL ${FACEQ_IMGCODECS_LOCATION} REALPATH)
  execute_process(COMMAND dpkg-query -S ${FACEQ_IMGCODECS_REAL} OUTPUT_VARIABLE FACEQ_IMGCODECS_OWNER
                  ERROR_QUIET RESULT_VARIABLE FACEQ_IMGCODECS_RC)
  if(FACEQ_IMGCODECS_RC EQUAL 0)
    string(REGEX REPLACE "[:,].*" "" FACEQ_IMGCODECS_PACKAGE "${FACEQ_IMGCODECS_OWNER}")
    list(APPEND FACEQ_DEB_DEPENDS ${FACEQ_IMGCODECS_PACKAGE})
  endif()
endif()
string(REPLACE ";" ", " CPACK_DEBIAN_PACKAGE_DEPENDS "${FACEQ_DEB_DEPENDS}")
# dlib's convolutions run through libblas.so.3: OpenBLAS makes them fast (README);
# libdlib-data holds the 68-point landmark model, the fallback `faceq download
# models` installs when dlib.net is out of reach (data/models.json).
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "libopenblas0, libdlib-data")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${FACEQ_PACKAGING_DIR}/postinst ${FACEQ_PACKAGING_DIR}/prerm
                                       ${FACEQ_PACKAGING_DIR}/postrm ${FACEQ_PACKAGING_DIR}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# One package holding the default component and the system one.
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL Unspecified system)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
include(CPack)
