// Compiles the test drivers' precompiled header (tests/CMakeLists.txt,
// clonefs_test_pch); nothing else.
