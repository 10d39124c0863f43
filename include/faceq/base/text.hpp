// faceq/base/text.hpp — UTF-8 text: decoding to code points and back, and
// case folding for comparing and searching names without regard to case.
//
// decode_utf8 accepts exactly the well-formed UTF-8 of the Unicode standard
// (no overlong forms, no surrogates, nothing above U+10FFFF). fold_case maps
// every code point through glibc's built-in C.UTF-8 tables (Unicode simple
// case mapping: one code point to one, so "Σ" is always "σ", never the final
// "ς"); without C.UTF-8 only ASCII letters fold. The fold is what the gallery
// stores as a person's name key, so it must not change between releases: a
// changed fold would make stored keys disagree with folded queries.
//
// printable() is how a name or a path enters a line for people (stderr
// messages, tables): a file named "a\n\x1b]0;x\a.jpg" must neither split the
// line nor retitle the terminal.
//
// Errors: none thrown (malformed input is a return value). Thread-safety:
// pure functions; the C.UTF-8 locale is created once, thread-safely.
#pragma once

#include <string>
#include <string_view>

namespace faceq {

// The code points of `text`; false (and `out` unspecified) when it is not
// well-formed UTF-8.
bool decode_utf8(const std::string& text, std::u32string& out);

// Appends the UTF-8 encoding of `cp` (requires cp <= U+10FFFF) to `out`.
void append_utf8(char32_t cp, std::string& out);

// Lower-cases UTF-8 text (Unicode simple case mapping), for comparing names
// and searching them without regard to case. Text that is not well-formed
// UTF-8 is returned unchanged.
std::string fold_case(const std::string& text);

// Bidirectional controls (U+202A-202E, U+2066-2069, U+200E, U+200F, U+061C)
// and zero-width characters (U+200B-200D, U+2060, U+FEFF): invisible, and able
// to make one name look like another or reorder the text around it.
bool is_invisible_format(char32_t cp);

// `text` safe to print in one line: C0 controls and DEL as \n, \r, \t or
// \xHH, C1 controls and is_invisible_format() characters as \u{HHHH}, and
// bytes that are not well-formed UTF-8 as \xHH. Everything else, backslash
// included, is kept as it is.
std::string printable(std::string_view text);

}  // namespace faceq
