export { remediate } from './remediate';
export { virtualPatch } from './virtual-patch';
export { reconcile } from './reconcile';
