/**
 * Signal-with-start of an incident workflow (an IP incident, a campaign or a virtual patch) with
 * its first sighting, and whether that call started it or joined a run already open.
 */
import { randomUUID } from 'node:crypto';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import { TypedSearchAttributes } from '@temporalio/common';
import type { Workflow } from '@temporalio/common';
import { searchAttributes, sightingSignal, type Sighting } from '../../workflows/definitions';
import { signalWithStartOutcome } from './temporal';

export interface OpenIncident<W extends Workflow> {
  workflowType: string;
  workflowId: string;
  taskQueue: string;
  args: Parameters<W>;
  sighting: Sighting;
  /** Shown in the Temporal UI's list and on the incident's page. */
  summary: string;
  details: string[];
  /** The searchable targets, action and detector; the state starts as `validating`. */
  targets: string[];
  action: string;
  detector: string;
}

export interface OpenedIncident {
  joined: boolean;
  /** The run as the server describes it — only when this call did not start it. */
  description?: WorkflowExecutionDescription;
}

export async function openIncident<W extends Workflow>(
  client: Client,
  o: OpenIncident<W>,
): Promise<OpenedIncident> {
  const requestId = randomUUID();
  const { result: handle, started } = await signalWithStartOutcome(() =>
    client.workflow.signalWithStart<Workflow, [Sighting]>(o.workflowType, {
      workflowId: o.workflowId,
      taskQueue: o.taskQueue,
      args: o.args,
      signal: sightingSignal,
      signalArgs: [o.sighting],
      // Only the run this call starts carries this memo: how a caller tells started from joined
      // when the connection cannot read the server's answer (see `signalWithStartOutcome`).
      memo: { requestId },
      staticSummary: o.summary,
      staticDetails: o.details.join('\n\n'),
      typedSearchAttributes: new TypedSearchAttributes([
        { key: searchAttributes.target, value: o.targets },
        { key: searchAttributes.action, value: o.action },
        { key: searchAttributes.detector, value: o.detector },
        { key: searchAttributes.state, value: 'validating' },
      ]),
    }),
  );
  // A run this call started is validating what it was given: nothing to ask the server.
  if (started) return { joined: false };
  const description = await handle.describe();
  return { joined: description.memo?.requestId !== requestId, description };
}
