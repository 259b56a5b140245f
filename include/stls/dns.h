#ifndef STLS_DNS_H
#define STLS_DNS_H
#endif
