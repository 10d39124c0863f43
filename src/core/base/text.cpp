// text.cpp — see faceq/base/text.hpp.
#include "faceq/base/text.hpp"

#include <fmt/format.h>

#include <clocale>
#include <cwctype>

namespace faceq {
namespace {

// glibc's C.UTF-8 locale has Unicode's case mappings; it is built in (no
// locale files needed) and never the process-wide locale, so nothing else
// changes behaviour.
locale_t utf8_locale() {
    static const locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return loc;
}

// The code point starting at s[i] and its length in bytes; false when the
// bytes there are not well-formed UTF-8.
bool next_code_point(std::string_view s, std::size_t i, char32_t& cp, std::size_t& n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80)
        cp = c, n = 1;
    else if ((c & 0xE0) == 0xC0)
        cp = c & 0x1F, n = 2;
    else if ((c & 0xF0) == 0xE0)
        cp = c & 0x0F, n = 3;
    else if ((c & 0xF8) == 0xF0)
        cp = c & 0x07, n = 4;
    else
        return false;
    if (i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (cc & 0x3F);
    }
    return !((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
             (cp >= 0xD800 && cp <= 0xDFFF));
}

}  // namespace

bool decode_utf8(const std::string& s, std::u32string& out) {
    out.clear();
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp;
        std::size_t n;
        if (!next_code_point(s, i, cp, n)) return false;
        out.push_back(cp);
        i += n;
    }
    return true;
}

bool is_invisible_format(char32_t cp) {
    return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
           cp == 0x061C || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF;
}

std::string printable(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        char32_t cp;
        std::size_t n;
        if (!next_code_point(text, i, cp, n)) {
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(text[i]));
            ++i;
            continue;
        }
        if (cp == '\n')
            out += "\\n";
        else if (cp == '\r')
            out += "\\r";
        else if (cp == '\t')
            out += "\\t";
        else if (cp < 0x20 || cp == 0x7F)
            out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
        else if ((cp >= 0x80 && cp <= 0x9F) || is_invisible_format(cp))
            out += fmt::format("\\u{{{:04x}}}", static_cast<unsigned>(cp));
        else
            out.append(text.substr(i, n));
        i += n;
    }
    return out;
}

void append_utf8(char32_t cp, std::string& out) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string fold_case(const std::string& text) {
    std::u32string cps;
    if (!decode_utf8(text, cps)) return text;
    std::string out;
    out.reserve(text.size());
    const locale_t loc = utf8_locale();
    for (char32_t cp : cps) {
        // Without C.UTF-8 (not a glibc system) only ASCII letters fold.
        const auto lower =
            loc ? towlower_l(static_cast<wint_t>(cp), loc) : static_cast<wint_t>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        append_utf8(static_cast<char32_t>(lower), out);
    }
    return out;
}

}  // namespace faceq
