/* Domain name normalisation. */
#include "stls/domain.h"
