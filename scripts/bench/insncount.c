/*
 * insncount: a QEMU TCG plugin that counts the guest instructions a
 * qemu-user run executes, for scripts/bench/arm64-insns.
 *
 * Built by that script at run time:
 *   gcc -shared -fPIC -O2 -o insncount.so insncount.c
 *   qemu-aarch64 -plugin ./insncount.so,out=FILE ./prog
 * At exit it writes one line, "insns N", to FILE (or, without out=, through
 * QEMU's log, that is stderr).
 *
 * Debian ships no qemu-plugin.h, so the few parts of the plugin API used
 * here are declared by hand, as documented for QEMU 7.2 (API version 1).
 *
 * qemu-user runs each guest thread as its own vCPU on its own host thread.
 * Inline adds are not atomic in 7.2, so each translation block gets an
 * execution callback that adds the block's instruction count to its vCPU's
 * counter (one writer per counter, each on its own cache line); the counters
 * are summed at exit. A vCPU index beyond the table shares one atomic counter.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- the plugin API, declared by hand (QEMU 7.2, include/qemu/qemu-plugin.h) */
#define EXPORT __attribute__((visibility("default")))
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct {
	const char *target_name;
	struct {
		int min, cur;
	} version;
	_Bool system_emulation;
	/* more fields follow that this plugin does not read */
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, qemu_plugin_vcpu_tb_trans_cb_t);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *, qemu_plugin_vcpu_udata_cb_t,
					  enum qemu_plugin_cb_flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, qemu_plugin_udata_cb_t, void *userdata);
void qemu_plugin_outs(const char *);

EXPORT int qemu_plugin_version = 1; /* QEMU_PLUGIN_VERSION of 7.2 */

/* ---- the counters */
#define SLOTS 512
static struct {
	uint64_t n;
	char pad[56];
} slot[SLOTS] __attribute__((aligned(64)));
static uint64_t shared; /* vCPUs from SLOTS on */
static const char *out; /* out=FILE, or NULL */

static void tb_exec(unsigned int vcpu, void *udata)
{
	uint64_t n = (uint64_t)(uintptr_t)udata;
	if (vcpu < SLOTS) {
		/* single writer: a relaxed load and store, no locked add */
		uint64_t v = __atomic_load_n(&slot[vcpu].n, __ATOMIC_RELAXED);
		__atomic_store_n(&slot[vcpu].n, v + n, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_add(&shared, n, __ATOMIC_RELAXED);
	}
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	uintptr_t n = qemu_plugin_tb_n_insns(tb);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)n);
}

static void at_exit(qemu_plugin_id_t id, void *udata)
{
	(void)id, (void)udata;
	uint64_t sum = __atomic_load_n(&shared, __ATOMIC_RELAXED);
	for (int i = 0; i < SLOTS; i++)
		sum += __atomic_load_n(&slot[i].n, __ATOMIC_RELAXED);
	char line[64];
	snprintf(line, sizeof line, "insns %llu\n", (unsigned long long)sum);
	FILE *f = out ? fopen(out, "w") : NULL;
	if (f) {
		fputs(line, f);
		fclose(f);
	} else {
		qemu_plugin_outs(line);
	}
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	if (info->system_emulation) {
		qemu_plugin_outs("insncount: for qemu-user only\n");
		return 1;
	}
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "out=", 4) == 0) {
			out = argv[i] + 4;
		} else {
			char msg[256];
			snprintf(msg, sizeof msg, "insncount: unknown argument %s (out=FILE)\n", argv[i]);
			qemu_plugin_outs(msg);
			return 1;
		}
	}
	qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
