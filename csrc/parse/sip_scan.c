/* Byte classes (generated once from the RFC 3261 §25.1 character sets;
 * see the enum in sip_scan.h) and small scanners. */
#include <string.h>

#include "sip_scan.h"

const uint16_t sip__cclass[256] = {
    /* 0x0 */ SIP_C_CTL,
    /* 0x1 */ SIP_C_CTL,
    /* 0x2 */ SIP_C_CTL,
    /* 0x3 */ SIP_C_CTL,
    /* 0x4 */ SIP_C_CTL,
    /* 0x5 */ SIP_C_CTL,
    /* 0x6 */ SIP_C_CTL,
    /* 0x7 */ SIP_C_CTL,
    /* 0x8 */ SIP_C_CTL,
    /* 0x9 */ SIP_C_WS | SIP_C_CTL,
    /* 0xa */ SIP_C_CTL,
    /* 0xb */ SIP_C_CTL,
    /* 0xc */ SIP_C_CTL,
    /* 0xd */ SIP_C_CTL,
    /* 0xe */ SIP_C_CTL,
    /* 0xf */ SIP_C_CTL,
    /* 0x10 */ SIP_C_CTL,
    /* 0x11 */ SIP_C_CTL,
    /* 0x12 */ SIP_C_CTL,
    /* 0x13 */ SIP_C_CTL,
    /* 0x14 */ SIP_C_CTL,
    /* 0x15 */ SIP_C_CTL,
    /* 0x16 */ SIP_C_CTL,
    /* 0x17 */ SIP_C_CTL,
    /* 0x18 */ SIP_C_CTL,
    /* 0x19 */ SIP_C_CTL,
    /* 0x1a */ SIP_C_CTL,
    /* 0x1b */ SIP_C_CTL,
    /* 0x1c */ SIP_C_CTL,
    /* 0x1d */ SIP_C_CTL,
    /* 0x1e */ SIP_C_CTL,
    /* 0x1f */ SIP_C_CTL,
    /* ' ' */ SIP_C_WS,
    /* '!' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '"' */ SIP_C_WORD,
    /* '#' */ 0,
    /* '$' */ SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV,
    /* '%' */ SIP_C_TOKEN | SIP_C_WORD,
    /* '&' */ SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM,
    /* "'" */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '(' */ SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM |
        SIP_C_HNV | SIP_C_WORD,
    /* ')' */ SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM |
        SIP_C_HNV | SIP_C_WORD,
    /* '*' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '+' */ SIP_C_TOKEN | SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM |
        SIP_C_HNV | SIP_C_WORD | SIP_C_SCHEME,
    /* ',' */ SIP_C_USER | SIP_C_PASSWORD,
    /* '-' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD | SIP_C_SCHEME,
    /* '.' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD | SIP_C_SCHEME,
    /* '/' */ SIP_C_USER | SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '0' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '1' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '2' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '3' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '4' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '5' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '6' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '7' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '8' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* '9' */ SIP_C_DIGIT | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* ':' */ SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* ';' */ SIP_C_USER,
    /* '<' */ SIP_C_WORD,
    /* '=' */ SIP_C_USER | SIP_C_PASSWORD,
    /* '>' */ SIP_C_WORD,
    /* '?' */ SIP_C_USER | SIP_C_HNV | SIP_C_WORD,
    /* '@' */ 0,
    /* 'A' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'B' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'C' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'D' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'E' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'F' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'G' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'H' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'I' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'J' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'K' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'L' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'M' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'N' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'O' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'P' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'Q' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'R' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'S' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'T' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'U' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'V' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'W' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'X' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'Y' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'Z' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* '[' */ SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '\\' */ SIP_C_WORD,
    /* ']' */ SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '^' */ 0,
    /* '_' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* '`' */ SIP_C_TOKEN | SIP_C_WORD,
    /* 'a' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'b' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'c' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'd' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'e' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'f' */ SIP_C_ALPHA | SIP_C_HEX | SIP_C_TOKEN | SIP_C_UNRESERVED |
        SIP_C_USER | SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST |
        SIP_C_WORD | SIP_C_SCHEME,
    /* 'g' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'h' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'i' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'j' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'k' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'l' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'm' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'n' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'o' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'p' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'q' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'r' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 's' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 't' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'u' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'v' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'w' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'x' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'y' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* 'z' */ SIP_C_ALPHA | SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER |
        SIP_C_PASSWORD | SIP_C_PARAM | SIP_C_HNV | SIP_C_HOST | SIP_C_WORD |
        SIP_C_SCHEME,
    /* '{' */ SIP_C_WORD,
    /* '|' */ 0,
    /* '}' */ SIP_C_WORD,
    /* '~' */ SIP_C_TOKEN | SIP_C_UNRESERVED | SIP_C_USER | SIP_C_PASSWORD |
        SIP_C_PARAM | SIP_C_HNV | SIP_C_WORD,
    /* 0x7f */ SIP_C_CTL,
    /* 0x80 */ SIP_C_UTF8,
    /* 0x81 */ SIP_C_UTF8,
    /* 0x82 */ SIP_C_UTF8,
    /* 0x83 */ SIP_C_UTF8,
    /* 0x84 */ SIP_C_UTF8,
    /* 0x85 */ SIP_C_UTF8,
    /* 0x86 */ SIP_C_UTF8,
    /* 0x87 */ SIP_C_UTF8,
    /* 0x88 */ SIP_C_UTF8,
    /* 0x89 */ SIP_C_UTF8,
    /* 0x8a */ SIP_C_UTF8,
    /* 0x8b */ SIP_C_UTF8,
    /* 0x8c */ SIP_C_UTF8,
    /* 0x8d */ SIP_C_UTF8,
    /* 0x8e */ SIP_C_UTF8,
    /* 0x8f */ SIP_C_UTF8,
    /* 0x90 */ SIP_C_UTF8,
    /* 0x91 */ SIP_C_UTF8,
    /* 0x92 */ SIP_C_UTF8,
    /* 0x93 */ SIP_C_UTF8,
    /* 0x94 */ SIP_C_UTF8,
    /* 0x95 */ SIP_C_UTF8,
    /* 0x96 */ SIP_C_UTF8,
    /* 0x97 */ SIP_C_UTF8,
    /* 0x98 */ SIP_C_UTF8,
    /* 0x99 */ SIP_C_UTF8,
    /* 0x9a */ SIP_C_UTF8,
    /* 0x9b */ SIP_C_UTF8,
    /* 0x9c */ SIP_C_UTF8,
    /* 0x9d */ SIP_C_UTF8,
    /* 0x9e */ SIP_C_UTF8,
    /* 0x9f */ SIP_C_UTF8,
    /* 0xa0 */ SIP_C_UTF8,
    /* 0xa1 */ SIP_C_UTF8,
    /* 0xa2 */ SIP_C_UTF8,
    /* 0xa3 */ SIP_C_UTF8,
    /* 0xa4 */ SIP_C_UTF8,
    /* 0xa5 */ SIP_C_UTF8,
    /* 0xa6 */ SIP_C_UTF8,
    /* 0xa7 */ SIP_C_UTF8,
    /* 0xa8 */ SIP_C_UTF8,
    /* 0xa9 */ SIP_C_UTF8,
    /* 0xaa */ SIP_C_UTF8,
    /* 0xab */ SIP_C_UTF8,
    /* 0xac */ SIP_C_UTF8,
    /* 0xad */ SIP_C_UTF8,
    /* 0xae */ SIP_C_UTF8,
    /* 0xaf */ SIP_C_UTF8,
    /* 0xb0 */ SIP_C_UTF8,
    /* 0xb1 */ SIP_C_UTF8,
    /* 0xb2 */ SIP_C_UTF8,
    /* 0xb3 */ SIP_C_UTF8,
    /* 0xb4 */ SIP_C_UTF8,
    /* 0xb5 */ SIP_C_UTF8,
    /* 0xb6 */ SIP_C_UTF8,
    /* 0xb7 */ SIP_C_UTF8,
    /* 0xb8 */ SIP_C_UTF8,
    /* 0xb9 */ SIP_C_UTF8,
    /* 0xba */ SIP_C_UTF8,
    /* 0xbb */ SIP_C_UTF8,
    /* 0xbc */ SIP_C_UTF8,
    /* 0xbd */ SIP_C_UTF8,
    /* 0xbe */ SIP_C_UTF8,
    /* 0xbf */ SIP_C_UTF8,
    /* 0xc0 */ SIP_C_UTF8,
    /* 0xc1 */ SIP_C_UTF8,
    /* 0xc2 */ SIP_C_UTF8,
    /* 0xc3 */ SIP_C_UTF8,
    /* 0xc4 */ SIP_C_UTF8,
    /* 0xc5 */ SIP_C_UTF8,
    /* 0xc6 */ SIP_C_UTF8,
    /* 0xc7 */ SIP_C_UTF8,
    /* 0xc8 */ SIP_C_UTF8,
    /* 0xc9 */ SIP_C_UTF8,
    /* 0xca */ SIP_C_UTF8,
    /* 0xcb */ SIP_C_UTF8,
    /* 0xcc */ SIP_C_UTF8,
    /* 0xcd */ SIP_C_UTF8,
    /* 0xce */ SIP_C_UTF8,
    /* 0xcf */ SIP_C_UTF8,
    /* 0xd0 */ SIP_C_UTF8,
    /* 0xd1 */ SIP_C_UTF8,
    /* 0xd2 */ SIP_C_UTF8,
    /* 0xd3 */ SIP_C_UTF8,
    /* 0xd4 */ SIP_C_UTF8,
    /* 0xd5 */ SIP_C_UTF8,
    /* 0xd6 */ SIP_C_UTF8,
    /* 0xd7 */ SIP_C_UTF8,
    /* 0xd8 */ SIP_C_UTF8,
    /* 0xd9 */ SIP_C_UTF8,
    /* 0xda */ SIP_C_UTF8,
    /* 0xdb */ SIP_C_UTF8,
    /* 0xdc */ SIP_C_UTF8,
    /* 0xdd */ SIP_C_UTF8,
    /* 0xde */ SIP_C_UTF8,
    /* 0xdf */ SIP_C_UTF8,
    /* 0xe0 */ SIP_C_UTF8,
    /* 0xe1 */ SIP_C_UTF8,
    /* 0xe2 */ SIP_C_UTF8,
    /* 0xe3 */ SIP_C_UTF8,
    /* 0xe4 */ SIP_C_UTF8,
    /* 0xe5 */ SIP_C_UTF8,
    /* 0xe6 */ SIP_C_UTF8,
    /* 0xe7 */ SIP_C_UTF8,
    /* 0xe8 */ SIP_C_UTF8,
    /* 0xe9 */ SIP_C_UTF8,
    /* 0xea */ SIP_C_UTF8,
    /* 0xeb */ SIP_C_UTF8,
    /* 0xec */ SIP_C_UTF8,
    /* 0xed */ SIP_C_UTF8,
    /* 0xee */ SIP_C_UTF8,
    /* 0xef */ SIP_C_UTF8,
    /* 0xf0 */ SIP_C_UTF8,
    /* 0xf1 */ SIP_C_UTF8,
    /* 0xf2 */ SIP_C_UTF8,
    /* 0xf3 */ SIP_C_UTF8,
    /* 0xf4 */ SIP_C_UTF8,
    /* 0xf5 */ SIP_C_UTF8,
    /* 0xf6 */ SIP_C_UTF8,
    /* 0xf7 */ SIP_C_UTF8,
    /* 0xf8 */ SIP_C_UTF8,
    /* 0xf9 */ SIP_C_UTF8,
    /* 0xfa */ SIP_C_UTF8,
    /* 0xfb */ SIP_C_UTF8,
    /* 0xfc */ SIP_C_UTF8,
    /* 0xfd */ SIP_C_UTF8,
    /* 0xfe */ SIP_C_UTF8,
    /* 0xff */ SIP_C_UTF8,
};

int sip__parse_uint(const char *p, const char *end, uint64_t max,
                    uint64_t *out) {
  if (p >= end)
    return SIP_EVALUE;
  uint64_t v = 0;
  for (; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < '0' || c > '9')
      return SIP_EVALUE;
    /* saturate instead of wrapping, so 4294967301 is out of range, not 5 */
    if (v > (UINT64_MAX - 9) / 10)
      v = UINT64_MAX;
    else
      v = v * 10 + (c - '0');
  }
  if (v > max)
    return SIP_ERANGE;
  *out = v;
  return 0;
}

/* sip__skip_lws past its inline cases */
const char *sip__skip_lws_slow(const char *p, const char *end) {
  for (;;) {
    if (p < end && (*p == ' ' || *p == '\t')) {
      p++;
    } else if (p + 1 < end && *p == '\r' && p[1] == '\n' && p + 2 < end &&
               (p[2] == ' ' || p[2] == '\t')) {
      p += 3;
    } else if (p + 1 < end && *p == '\n' && (p[1] == ' ' || p[1] == '\t')) {
      p += 2;
    } else {
      return p;
    }
  }
}

const char *sip__skip_quoted(const char *p, const char *end, int *pairs) {
  /* No '"' after the opening one: unterminated whatever else is there. The
   * usual quoted string has no quoted-pair: then the first '"' ends it. */
  const char *q = ++p < end ? memchr(p, '"', (size_t)(end - p)) : NULL;
  if (!q)
    return NULL;
  if (!memchr(p, '\\', (size_t)(q - p)))
    return q + 1;
  for (; p < end; p++) {
    if (*p == '"')
      return p + 1;
    if (*p == '\\') {
      if (++p >= end)
        return NULL;
      if (pairs)
        *pairs = 1;
    }
  }
  return NULL;
}

/* a control byte the grammar never allows in a field (see sip__ctl_find) */
static int ctl_bad(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f;
}

static const char *ctl_scan(const char *p, const char *end) {
  /* a word with no byte below 0x20 and none equal to 0x7f is skipped with a
   * few operations ("has less than" and "has zero" of Hacker's Delight,
   * both exact as existence tests); a word that has one is looked at byte
   * by byte (HTAB, CR and LF are fine) */
  const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  while (end - p >= 8) {
    uint64_t x, y;
    memcpy(&x, p, 8);
    y = x ^ (ones * 0x7f);
    if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs)) {
      for (int i = 0; i < 8; i++)
        if (ctl_bad((unsigned char)p[i]))
          return p + i;
    }
    p += 8;
  }
  for (; p < end; p++)
    if (ctl_bad((unsigned char)*p))
      return p;
  return NULL;
}

const char *sip__ctl_find(const char *p, const char *end, int quoted_pairs) {
  const char *bad = ctl_scan(p, end);
  if (!bad || !quoted_pairs)
    return bad;
  int quoted = 0;
  for (const char *q = p; q < end; q++) {
    unsigned char c = (unsigned char)*q;
    if (quoted && c == '\\' && q + 1 < end && q[1] != '\r' && q[1] != '\n')
      q++; /* a quoted-pair: its second byte may be a control character */
    else if (c == '"')
      quoted = !quoted;
    else if (ctl_bad(c))
      return q;
  }
  return NULL;
}

size_t sip__count_byte(const char *p, const char *end, char c) {
  size_t n = 0;
  while (p < end && (p = memchr(p, c, (size_t)(end - p))) != NULL) {
    n++;
    p++;
  }
  return n;
}

size_t sip__fmt_uint(char *out, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    out[i] = tmp[n - 1 - i];
  out[n] = 0;
  return n;
}
