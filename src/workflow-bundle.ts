/**
 * What the workflow bundle is built from. The workflow modules and the SDK's workflow library
 * are evaluated once per worker's shared V8 context instead of once per incident: none of them
 * keeps per-workflow state at module scope (only constants, definitions and activity proxies,
 * which find the running workflow when called), and each incident is a short workflow, so the
 * per-incident module evaluation was a measurable part of its CPU.
 */
export const WORKFLOWS = {
  workflowsPath: require.resolve('../workflows'),
  preloadModules: ['@temporalio/workflow', require.resolve('../workflows')],
};
