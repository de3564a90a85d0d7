# iotstream: PGXS build. `make test` and `make demo` are the two entry points
# (see README.md); both install what is missing, build, and install.

EXTENSION    = iotstream
EXTVERSION   = 0.1.0
MODULE_big   = iotstream
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
# The install script is assembled from one file per stage, in order.
DATA_built   = sql/iotstream--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard sql/iotstream--*.sql))
PG_CPPFLAGS  = -Isrc -Wall -Wextra -Werror -Wno-unused-parameter \
               -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK   = -lrdkafka -lcurl -lssl -lcrypto -lsnappy -lzstd -lz -lm
REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test --load-extension=iotstream
EXTRA_CLEAN  = results regression.diffs regression.out

PG_CONFIG ?= $(shell test -x /usr/lib/postgresql/15/bin/pg_config && echo /usr/lib/postgresql/15/bin/pg_config || echo pg_config)
# No LLVM bitcode: it needs clang, and JIT inlining buys nothing here.
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifeq ($(PGXS),)
# Nothing is installed yet: only the targets that install it can run.
ifeq ($(filter deps test demo demo-stop bench,$(MAKECMDGOALS)),)
$(error PostgreSQL 15 server headers are missing; run `make deps` (as root) first)
endif
else
include $(PGXS)
endif

sql/iotstream--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

.PHONY: deps test demo demo-stop bench

deps:
	tools/install-deps.sh

# Each of these runs deps, then re-enters make for build + install, then
# drives a throwaway or demo cluster.
test:
	test/run.sh

demo:
	tools/demo.sh start

demo-stop:
	tools/demo.sh stop

bench:
	test/run.sh bench
