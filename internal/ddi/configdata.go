package ddi

import (
	"encoding/json"
	"maps"
	"net/http"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// handleConfigData applies PUT configData to the device's attributes:
// merge (the default) adds and overwrites, replace sets exactly data,
// remove deletes the keys named in data. The store validates the result.
func (a *API) handleConfigData(w http.ResponseWriter, r *http.Request) error {
	c, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxConfigDataBody)
	if err != nil {
		return err
	}
	var cd configData
	if err := json.Unmarshal(body, &cd); err != nil {
		return apierror.BadRequest("configData is not valid JSON: %v", jsonProblem(err))
	}
	if cd.Data == nil {
		return apierror.BadRequest("configData needs a data object")
	}
	attrs := map[string]string{}
	switch cd.Mode {
	case "", "merge":
		maps.Copy(attrs, d.Attributes)
		maps.Copy(attrs, *cd.Data)
	case "replace":
		maps.Copy(attrs, *cd.Data)
	case "remove":
		maps.Copy(attrs, d.Attributes)
		for k := range *cd.Data {
			delete(attrs, k)
		}
	default:
		return apierror.BadRequest("mode %q is not one of merge, replace, remove", cd.Mode)
	}
	if _, err := a.cfg.Store.UpdateDeviceReport(r.Context(), c.tenant, d.ID, store.DeviceReport{Attributes: attrs, Now: a.cfg.Clock.Now()}); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}
