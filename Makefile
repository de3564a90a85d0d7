# iotstream: PGXS build. `make test` and `make demo` are the two entry points
# (see README.md); both install what is missing, build, and install.

EXTENSION    = iotstream
# The version is written once, in the control file; C and tests get it from here.
EXTVERSION   = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" iotstream.control)
MODULE_big   = iotstream
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c src/*/*.c)))
# The install script is assembled from one file per stage, in order; the
# scripts of earlier versions stay as released, and sql/updates/ holds the
# upgrade scripts between them (test/integration/01_upgrade.sh walks them).
DATA_built   = sql/iotstream--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard sql/iotstream--*.sql)) $(wildcard sql/updates/iotstream--*--*.sql)
# -MMD: each object's header dependencies, so that a changed header rebuilds
# what includes it
PG_CPPFLAGS  = -Isrc -DIOTSTREAM_VERSION='"$(EXTVERSION)"' -MMD -MP -Wall -Wextra -Werror \
               -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare
SHLIB_LINK   = -lrdkafka -lcurl -lssl -lcrypto -lsnappy -lzstd -lz -lm
# pg_regress reads <inputdir>/sql/T.sql and compares with <outputdir>/expected
# or <inputdir>/expected/T.out; PG15 has no --expecteddir.  One directory
# whose sql/ and expected/ are links to test/sql and the top-level expected/
# names both explicitly.
REGRESS      = $(sort $(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_DIR  = .tmp/regress
REGRESS_OPTS = --inputdir=$(REGRESS_DIR) --outputdir=$(REGRESS_DIR) --load-extension=iotstream
REGRESS_PREP = regress-dir
EXTRA_CLEAN  = $(REGRESS_DIR) $(OBJS:.o=.d)

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

-include $(OBJS:.o=.d)

sql/iotstream--$(EXTVERSION).sql: $(sort $(wildcard sql/install/*.sql))
	cat $^ > $@

.PHONY: deps test demo demo-stop bench regress-dir

regress-dir:
	@mkdir -p $(REGRESS_DIR)
	@ln -sfn $(CURDIR)/test/sql $(REGRESS_DIR)/sql
	@ln -sfn $(CURDIR)/expected $(REGRESS_DIR)/expected

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

# ---------------------------------------------------------------------------
# tools/: programs the project ships next to the extension (a local broker
# and a load simulator).  Plain gcc, not PGXS: they are not part of the
# shared library.  `all` builds them, `install` copies them to PostgreSQL's
# bindir, `clean` removes them.
TOOLS_CC     ?= gcc
TOOLS_CFLAGS  = -Wall -Wextra -Werror -O2
TOOLS_BIN     = tools/bin/iotstream-broker tools/bin/iotstream-sim

.PHONY: tools install-tools clean-tools
tools: $(TOOLS_BIN)

tools/bin/iotstream-broker: tools/broker.c
	@mkdir -p tools/bin
	$(TOOLS_CC) $(TOOLS_CFLAGS) -o $@ $< -lrdkafka

tools/bin/iotstream-sim: tools/simulator.c tools/sim_message.c tools/sim_options.c tools/sim_mqtt.c tools/sim.h
	@mkdir -p tools/bin
	$(TOOLS_CC) $(TOOLS_CFLAGS) -o $@ $(filter %.c,$^) -lrdkafka -lm

install-tools: tools
	install -d '$(DESTDIR)$(bindir)'
	install -m 755 $(TOOLS_BIN) '$(DESTDIR)$(bindir)/'

clean-tools:
	rm -rf tools/bin

all: tools
install: install-tools
clean: clean-tools
