export { remediate } from './remediate';
