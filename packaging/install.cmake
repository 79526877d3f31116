# packaging/install.cmake — install rules for keel (included by the top-level
# CMakeLists.txt). Installs the header, libkeel.so.1.x with its SONAME and dev
# links, libkeel.a, the secure and debug shared builds, bin/keel, keel.pc, and
# a CMake package (lib/cmake/keel) so that find_package(keel) works.
#
# Why the package is written by hand around the export: consumers spell the
# static library in two ways, keel::keel-static and plain keel-static. If the
# plain name is not a target, CMake turns `target_link_libraries(app
# keel-static)` into `-lkeel-static`, which no linker finds (the Drogon +
# mimalloc-static failure). keelConfig.cmake therefore defines the plain names
# as imported targets that forward to the namespaced ones.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KEEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/keel)

# A static link takes override.c.o (the whole malloc family, one object) from
# libkeel.a only if something undefined names malloc when the linker scans the
# archive. A C++ program whose only allocations are in libstdc++ (new) names
# none, so the linker silently kept glibc's malloc for libstdc++ while keel_*
# calls used keel: the family only partly replaced. `-u malloc` makes malloc
# undefined from the start, so the archive's override object always comes in
# (and glibc's libc.a malloc.o never does, in a fully static link).
set_property(TARGET keel-static APPEND PROPERTY
  INTERFACE_LINK_OPTIONS "LINKER:-u,malloc")

install(TARGETS keel keel-static EXPORT keelTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# The secure and debug builds are preloaded by bin/keel (found in ../lib),
# not linked against, so they are not part of the exported package.
foreach(variant keel-secure keel-debug)
  if(TARGET ${variant})
    install(TARGETS ${variant} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endforeach()
install(TARGETS keel-cmd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/include/keel.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(EXPORT keelTargets NAMESPACE keel:: FILE keelTargets.cmake
  DESTINATION ${KEEL_CMAKE_DIR})
configure_package_config_file(
  ${CMAKE_CURRENT_SOURCE_DIR}/packaging/keelConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/keelConfig.cmake
  INSTALL_DESTINATION ${KEEL_CMAKE_DIR})
write_basic_package_version_file(
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/keelConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/keelConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/keelConfigVersion.cmake
  DESTINATION ${KEEL_CMAKE_DIR})

# keel.pc: the prefix is computed from the .pc file's own location
# (${pcfiledir}), so the installed tree can be moved (make install
# PREFIX=dir into a temporary directory, as the tests do).
file(RELATIVE_PATH KEEL_PC_UP
  ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" KEEL_PC_UP "${KEEL_PC_UP}")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/packaging/keel.pc.in
  ${CMAKE_CURRENT_BINARY_DIR}/packaging/keel.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/packaging/keel.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
