import { AsyncLocalStorage } from 'node:async_hooks';
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Client, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { Config } from '../config';

/** A Temporal client for the configured address and namespace. Close `connection` when done. */
export async function connectTemporal(config: Config): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({
    address: config.temporal.address,
    connectTimeout: '5s',
    interceptors: connectionInterceptors(),
  });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), connection };
}

/**
 * The gRPC interceptors of every connection this project opens: the SDK's default retries, and
 * one that reads whether a signal-with-start started a new run (see `signalWithStartOutcome`).
 */
export function connectionInterceptors(): Interceptor[] {
  return [readStarted, makeGrpcRetryInterceptor(defaultGrpcRetryOptions())];
}

const outcomes = new AsyncLocalStorage<{ started?: boolean }>();
const SIGNAL_WITH_START = '/temporal.api.workflowservice.v1.WorkflowService/SignalWithStartWorkflowExecution';

/**
 * Runs `call` (one signal-with-start) and says whether the server started a new run for it:
 * `true` when it did, `undefined` when it joined a running one or the connection cannot tell
 * (the caller then asks the server). The SDK client drops the response's `started` flag;
 * knowing it spares a new incident a describe call.
 */
export async function signalWithStartOutcome<T>(
  call: () => Promise<T>,
): Promise<{ result: T; started?: true }> {
  const outcome: { started?: boolean } = {};
  const result = await outcomes.run(outcome, call);
  return outcome.started === true ? { result, started: true } : { result };
}

/** Outermost, so it sees the answer that reached the client after any retries. */
const readStarted: Interceptor = (options, nextCall) => {
  const outcome = options.method_definition.path === SIGNAL_WITH_START ? outcomes.getStore() : undefined;
  if (!outcome) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start(metadata, _listener, next) {
      next(metadata, {
        onReceiveMessage(message: unknown, nextMessage: (m: unknown) => void) {
          if (message instanceof Uint8Array) {
            const response =
              temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionResponse.decode(message);
            outcome.started = response.started === true;
          }
          nextMessage(message);
        },
      });
    },
  });
};

/** The incident's page in the Temporal Web UI. */
export function incidentUrl(config: Config, workflowId: string): string {
  const ns = encodeURIComponent(config.temporal.namespace);
  return `${config.temporal.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`;
}
