/* fuzz_config.c - the configuration loader on arbitrary bytes: the pipeline config and the
 * Hydrogen Torch model config must each load or fail with a message, never crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	struct model_config mc;
	struct err err;
	char path[64];

	log_set_level(LOGL_ERROR);
	fuzz_memfile(data, size, path, sizeof(path));
	err.msg[0] = '\0';
	if (config_load_model(&mc, path, &err) && !err.msg[0])
		abort(); /* a failure always says why */
	err.msg[0] = '\0';
	if (config_load(&cfg, path, &err) && !err.msg[0])
		abort();
	if (strlen(err.msg) >= sizeof(err.msg))
		abort();
	return 0;
}
