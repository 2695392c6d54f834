// Times one llama.cpp build's decode step as the benchmark's servers run it: SEQS sequences, each in
// its own KV stream (kv_unified = false, as kaito and llama-server both set), a shared prefix of
// PREFIX tokens read once and copied to every stream, OWN tokens of each sequence's own question, then
// GEN steps that each decode one token of every sequence in one batch. Built against two llama.cpp
// trees by scripts/bench-llama-step.sh, it compares the versions' forward passes on the same machine
// without either server. Arguments are key=value; one output line per repetition.
#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

static double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

static double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[(size_t) (q * (double) (v.size() - 1) + 0.5)];
}

int main(int argc, char ** argv) {
    std::map<std::string, std::string> arg = {
        {"seqs", "8"}, {"prefix", "300"}, {"own", "20"}, {"gen", "64"}, {"reps", "3"},
        {"threads", "1"}, {"ubatch", "512"}, {"fa", "auto"}, {"mmap", "auto"}, {"label", "llama.cpp"},
    };
    std::string model_path;
    for (int i = 1; i < argc; i++) {
        const char * eq = strchr(argv[i], '=');
        const std::string key = eq ? std::string(argv[i], (size_t) (eq - argv[i])) : "";
        if (key.empty() || (!arg.count(key) && key != "model")) {
            fprintf(stderr, "usage: %s model=PATH [seqs=8] [prefix=300] [own=20] [gen=64] [reps=3] [threads=1] "
                            "[ubatch=512] [fa=auto|on|off] [mmap=auto|on|off] [label=NAME]\n", argv[0]);
            return 2;
        }
        (key == "model" ? model_path : arg[key]) = eq + 1;
    }
    const int seqs = atoi(arg["seqs"].c_str()), prefix = atoi(arg["prefix"].c_str());
    const int own = atoi(arg["own"].c_str()), gen = atoi(arg["gen"].c_str()), reps = atoi(arg["reps"].c_str());
    const int ubatch = atoi(arg["ubatch"].c_str());
    if (model_path.empty() || seqs < 1 || prefix < 1 || own < 1 || gen < 1 || reps < 1) {
        fprintf(stderr, "model= is required; seqs, prefix, own, gen and reps must be at least 1\n");
        return 2;
    }
    if (std::max({prefix, own, seqs}) > ubatch) {
        fprintf(stderr, "prefix, own and seqs must each fit in one batch (ubatch=%d)\n", ubatch);
        return 2;
    }
    for (const char * key : {"fa", "mmap"}) {
        if (arg[key] != "auto" && arg[key] != "on" && arg[key] != "off") {
            fprintf(stderr, "%s must be auto, on or off, not `%s`\n", key, arg[key].c_str());
            return 2;
        }
    }

    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.load_mode = arg["mmap"] == "on"  ? LLAMA_LOAD_MODE_MMAP
                 : arg["mmap"] == "off" ? LLAMA_LOAD_MODE_NONE : LLAMA_LOAD_MODE_AUTO;
    llama_model * model = llama_model_load_from_file(model_path.c_str(), mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", model_path.c_str()); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048 * seqs;
    cp.n_batch = cp.n_ubatch = ubatch;
    cp.n_seq_max = seqs;
    cp.kv_unified = false;
    cp.n_threads = cp.n_threads_batch = atoi(arg["threads"].c_str());
    cp.flash_attn_type = arg["fa"] == "on"    ? LLAMA_FLASH_ATTN_TYPE_ENABLED
                       : arg["fa"] == "off"   ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                              : LLAMA_FLASH_ATTN_TYPE_AUTO;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create the context\n"); return 1; }
    llama_memory_t mem = llama_get_memory(ctx);

    llama_batch batch = llama_batch_init(std::max({prefix, own, seqs}), 0, 1);
    auto add = [&](llama_token t, int pos, int seq, bool logits) {
        const int i = batch.n_tokens++;
        batch.token[i] = t; batch.pos[i] = pos; batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = seq; batch.logits[i] = logits;
    };
    // Ordinary tokens (away from the special ones at both ends of the vocabulary), new for every repetition.
    auto token = [&](long i) { return (llama_token) (1000 + (i * 7919) % (n_vocab - 2000)); };
    auto decode = [&](const char * what) {
        if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "llama_decode failed (%s)\n", what); exit(1); }
    };
    auto greedy = [&](int i) {
        const float * l = llama_get_logits_ith(ctx, i);
        return (llama_token) (std::max_element(l, l + n_vocab) - l);
    };

    for (int rep = 0; rep < reps; rep++) {
        llama_memory_clear(mem, true);
        const long salt = 1000003L * rep;
        batch.n_tokens = 0;
        for (int i = 0; i < prefix; i++) add(token(salt + i), i, 0, false);
        double t0 = now_ms();
        decode("prefix");
        const double prefix_ms = now_ms() - t0;
        for (int s = 1; s < seqs; s++) llama_memory_seq_cp(mem, 0, s, -1, -1);

        std::vector<llama_token> next(seqs);
        double own_ms = 0;
        for (int s = 0; s < seqs; s++) {
            batch.n_tokens = 0;
            for (int i = 0; i < own; i++) add(token(salt + 7 * (s + 1) * 1000 + i), prefix + i, s, i == own - 1);
            t0 = now_ms();
            decode("question");
            own_ms += now_ms() - t0;
            next[s] = greedy(own - 1);
        }

        std::vector<double> steps;
        for (int g = 0; g < gen; g++) {
            batch.n_tokens = 0;
            for (int s = 0; s < seqs; s++) add(next[s], prefix + own + g, s, true);
            t0 = now_ms();
            decode("step");
            steps.push_back(now_ms() - t0);
            for (int s = 0; s < seqs; s++) next[s] = greedy(s);
        }
        double sum = 0;
        for (double x : steps) sum += x;
        printf("%s rep=%d seqs=%d prefix=%d own=%d fa=%s mmap=%s prefix_ms=%.1f own_ms_per_seq=%.2f "
               "step_p50=%.2f step_p90=%.2f step_max=%.2f step_mean=%.2f\n",
               arg["label"].c_str(), rep, seqs, prefix, own, arg["fa"].c_str(), arg["mmap"].c_str(), prefix_ms, own_ms / seqs,
               quantile(steps, 0.5), quantile(steps, 0.9), quantile(steps, 1.0), sum / (double) steps.size());
        fflush(stdout);
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
