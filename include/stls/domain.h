#ifndef STLS_DOMAIN_H
#define STLS_DOMAIN_H
#endif
