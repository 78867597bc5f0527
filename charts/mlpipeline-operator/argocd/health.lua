-- Argo CD health of an MLPipeline (resource.customizations.health.mlpipeline.dev_MLPipeline).
-- Healthy: a model serves (or, with serving off, the run packaged one).
-- Progressing: the operator has not seen the spec yet, a run is under way, no replica of the new
-- model is ready yet (Deploying), a canary rolls out.
-- Suspended: a canary paused by hand (mlpipeline.dev/canary: pause).
-- Degraded: the run failed, or the last canary was rolled back (the stable version still serves).
local health = {status = "Progressing", message = "Waiting for the operator"}
local status = obj.status
if status == nil or status.phase == nil then
  return health
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  health.message = "Waiting for the operator to act on generation " .. tostring(generation)
  return health
end
local phase = status.phase
local message = status.message or phase
if phase == "Failed" or phase == "RolledBack" then
  return {status = "Degraded", message = message}
end
if status.serving ~= nil and status.serving.phase == "Paused" then
  return {status = "Suspended", message = message}
end
if phase == "Serving" or phase == "Packaged" then
  return {status = "Healthy", message = message}
end
return {status = "Progressing", message = message}
