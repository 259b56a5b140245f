# Turn the status page into a C string (serve_page.h) at build time, so the
# page is one HTML file to edit and the program needs no file at run time.
file(READ ${IN} html HEX)
string(LENGTH "${html}" n)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${html}")
file(WRITE ${OUT} "/* Generated from scanner/page/index.html; do not edit. */\n"
                  "static const char serve_page_html[] = {${bytes} 0x00};\n")
