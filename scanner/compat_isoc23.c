/* __isoc23_strtoul for c-ares' static archive from Debian 13 on glibc 2.36.
 *
 * Debian 13 builds c-ares against glibc 2.38, whose <stdlib.h> redirects
 * strtoul to __isoc23_strtoul when compiling for C23 or GNU extensions;
 * the archive's object files therefore name a symbol glibc 2.36 lacks.
 * It is the only such symbol in libcares.a (nm -u), and CMake compiles
 * this file only for that archive on a glibc without it.
 *
 * The C23 function differs from strtoul in one way: with base 0 or 2 it
 * also reads a "0b"/"0B" binary prefix. c-ares 1.34 calls strtoul once in
 * its library (ares_str_parse_uint, used for option values and ports),
 * always with base 10, where both read exactly the same digits; so
 * strtoul is a faithful replacement. */
#include <stdlib.h>

unsigned long __isoc23_strtoul(const char *nptr, char **endptr, int base);

unsigned long __isoc23_strtoul(const char *nptr, char **endptr, int base) {
  return strtoul(nptr, endptr, base);
}
