/* The private-address guard: may we connect to this address at all?
 *
 * A service that connects wherever a request (or a domain's DNS) points
 * must not be turned against the network it runs in. The guard refuses
 * every address that is not globally reachable unicast: loopback, RFC 1918,
 * CGNAT, link-local, multicast, unspecified, broadcast, reserved,
 * documentation, benchmarking, ULA, IETF protocol assignments, and IPv6
 * addresses that carry an IPv4 address (mapped, NAT64, 6to4, Teredo) when
 * that IPv4 address would be refused. It is checked after DNS, for every
 * address, just before connect(), so DNS rebinding cannot get past it.
 */
#ifndef STLS_ADDRGUARD_H
#define STLS_ADDRGUARD_H

#include <stdbool.h>
#include <sys/socket.h>

/* true when sa (AF_INET or AF_INET6) may be connected to. Otherwise false,
 * and *why (when why is not NULL) is a static phrase naming the range,
 * e.g. "loopback (127.0.0.0/8)"; any other family is refused too. *why is
 * set to NULL when the address is allowed. */
bool stls_addr_allowed(const struct sockaddr *sa, const char **why);

/* The same for an address in text form; an unparsable text is refused. */
bool stls_addr_text_allowed(const char *ip, const char **why);

#endif
