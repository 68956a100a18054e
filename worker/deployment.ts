import type { Client } from '@temporalio/client';
import type { Logger } from '../lib/logger';

export interface WorkerDeployment {
  name: string;
  buildId: string;
}

/** What the server knows of a deployment: its versions (build ids) and which one takes new runs. */
export interface DeploymentState {
  buildIds: string[];
  current?: string;
}

/** The deployment's versions and current version; none when the server has never seen it. */
export async function describeDeployment(client: Client, namespace: string, name: string): Promise<DeploymentState> {
  try {
    const { workerDeploymentInfo: info } = await client.workflowService.describeWorkerDeployment({ namespace, deploymentName: name });
    return {
      buildIds: (info?.versionSummaries ?? []).map((v) => v.deploymentVersion?.buildId ?? '').filter(Boolean),
      current: info?.routingConfig?.currentDeploymentVersion?.buildId ?? undefined,
    };
  } catch (error) {
    if ((error as { code?: number }).code === 5 /* NOT_FOUND */) return { buildIds: [] };
    throw error;
  }
}

/**
 * Makes `buildId` the version new runs go to (what `temporal worker deployment set-current-version`
 * does). The server refuses while the new version has not yet been polled on every task queue
 * (workflow and activity) of the current one — its workers are still starting — so a refusal of
 * that kind is asked again until `timeoutMs`.
 */
export async function setCurrentVersion(
  client: Client,
  namespace: string,
  deployment: WorkerDeployment,
  identity: string,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await client.workflowService.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName: deployment.name,
        buildId: deployment.buildId,
        identity,
      });
      return;
    } catch (error) {
      const starting = (error as { code?: number }).code === 9 /* FAILED_PRECONDITION */ && /task queues?/.test(String(error));
      if (!starting || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/**
 * The first version of a deployment becomes current by itself, so a first install needs no
 * operator step; any later version waits for the operator to promote it (docs/operations.md),
 * while the current one keeps taking new runs. The server registers a version when its first
 * worker polls, hence the wait for it.
 */
export async function promoteIfFirst(
  client: Client,
  namespace: string,
  deployment: WorkerDeployment,
  logger: Logger,
  options: { timeoutMs?: number; pollMs?: number } = {},
): Promise<'promoted' | 'not-first'> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const state = await describeDeployment(client, namespace, deployment.name);
    if (state.current) {
      if (state.current !== deployment.buildId)
        logger.info(
          { deployment: deployment.name, buildId: deployment.buildId, current: state.current },
          'worker version registered; new runs go to the current version until it is promoted',
        );
      return 'not-first';
    }
    if (state.buildIds.includes(deployment.buildId)) {
      await setCurrentVersion(client, namespace, deployment, `mcp-fleet worker ${deployment.buildId}`);
      logger.info({ deployment: deployment.name, buildId: deployment.buildId }, 'first version of the deployment: made current');
      return 'promoted';
    }
    if (Date.now() > deadline) throw new Error(`worker version ${deployment.name}/${deployment.buildId} was not registered in time`);
    await new Promise((r) => setTimeout(r, options.pollMs ?? 500));
  }
}
