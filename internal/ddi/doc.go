// Package ddi serves Eclipse hawkBit's Direct Device Integration API v1
// under /{tenant}/controller/v1/{controllerId}, so that devices running
// SWUpdate's suricatta, rauc-hawkbit-updater or Zephyr's hawkBit client
// take part in Updraft assignments and campaigns without new firmware.
//
// Mapping onto Updraft:
//   - A controller id is a device's serial number; unknown controllers that
//     poll are registered as pending devices with protocol "ddi"
//     (rate-limited and capped like enrollments).
//   - The tenant path segment matches a configured store tenant ignoring
//     case; links are absolute and repeat the client's spelling.
//   - A DDI action is an assignment, named by a short numeric id that the
//     store allocates (store.DDI); feedback becomes status reports with
//     server-assigned sequence numbers, so the store's transition rules and
//     history apply unchanged.
//   - Updraft cancels at once; the cancelAction link stays until the device
//     acknowledges the cancel with feedback (recorded in the history with
//     an error code starting "ddi_cancel_").
//
// Every JSON response carries Content-Length (Zephyr cannot read chunked
// bodies). Request bodies are bounded. API is safe for concurrent use;
// its only in-memory state is the registration rate limiter, the
// gateway-token audit throttle and per-device feedback locks.
package ddi
