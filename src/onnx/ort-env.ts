/**
 * onnxruntime 1.30 on Linux collects telemetry: it writes a device id and an
 * event database under $HOME/.cache/Microsoft and may upload them over HTTPS;
 * where $HOME is read-only (a hardened pod) it prints a coloured plain-text
 * warning into the JSON log. A model server sends nothing anywhere by
 * default: telemetry is off unless ORT_DISABLE_TELEMETRY is set explicitly.
 * Must run in the main thread before onnxruntime is loaded (the native
 * library reads the process environment, which worker threads share).
 */
export function disableRuntimeTelemetry(): void {
  process.env.ORT_DISABLE_TELEMETRY ??= '1'
}
