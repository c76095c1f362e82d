// nvtx_recorder.cpp: a minimal NVTX injection library for tests. NVTX loads the library named
// by NVTX_INJECTION64_PATH at its first call and lets it fill the core function table; this one
// records push/pop/start/end as text that test_trace.cpp reads back through
// si_test_nvtx_events(), so the test checks what a profiler would really receive.
// Types only: the NVTX implementation lives in libsharpinfer, and a second copy here would
// share (interpose) its globals.
#define NVTX_NO_IMPL
#include <nvtx3/nvToolsExt.h>

#include <mutex>
#include <string>

namespace {
std::mutex g_mutex;
std::string g_events;
nvtxRangeId_t g_next_id = 1;

void record(const std::string& event) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_events += event;
    g_events += ';';
}

int NVTX_API push(const char* name) {
    record(std::string("push ") + name);
    return 0;
}
int NVTX_API pop() {
    record("pop");
    return 0;
}
nvtxRangeId_t NVTX_API start(const char* name) {
    std::lock_guard<std::mutex> lock(g_mutex);
    const nvtxRangeId_t id = g_next_id++;
    g_events += "start " + std::string(name) + " #" + std::to_string(id) + ";";
    return id;
}
void NVTX_API end(nvtxRangeId_t id) { record("end #" + std::to_string(id)); }
}  // namespace

extern "C" __attribute__((visibility("default"))) const char* si_test_nvtx_events() {
    std::lock_guard<std::mutex> lock(g_mutex);
    static std::string copy;
    copy = g_events;
    return copy.c_str();
}

extern "C" __attribute__((visibility("default"))) int InitializeInjectionNvtx2(NvtxGetExportTableFunc_t get_export_table) {
    auto* callbacks = static_cast<const NvtxExportTableCallbacks*>(get_export_table(NVTX_ETID_CALLBACKS));
    NvtxFunctionTable table = nullptr;
    unsigned int entries = 0;  // (the table's length, not its size in bytes)
    if (!callbacks || !callbacks->GetModuleFunctionTable(NVTX_CB_MODULE_CORE, &table, &entries)) return 0;
    if (entries <= NVTX_CBID_CORE_RangePop) return 0;
    *table[NVTX_CBID_CORE_RangePushA] = reinterpret_cast<NvtxFunctionPointer>(&push);
    *table[NVTX_CBID_CORE_RangePop] = reinterpret_cast<NvtxFunctionPointer>(&pop);
    *table[NVTX_CBID_CORE_RangeStartA] = reinterpret_cast<NvtxFunctionPointer>(&start);
    *table[NVTX_CBID_CORE_RangeEnd] = reinterpret_cast<NvtxFunctionPointer>(&end);
    return 1;
}
