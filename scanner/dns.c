/* DNS resolution (c-ares on libuv). */
#include "stls/dns.h"
