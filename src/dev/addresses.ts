/** The address file of a running `perimeter dev`: how other commands on this machine find it. */
import fs from 'node:fs';
import path from 'node:path';

/** What `perimeter dev` tells other commands on this machine: where its services listen. */
export interface DevAddresses {
  pid: number;
  TEMPORAL_ADDRESS: string;
  AWS_ENDPOINT_URL_WAFV2: string;
  PERIMETER_TEMPORAL_UI_URL: string;
}

export function devAddressesFile(stateDir: string): string {
  return path.join(stateDir, 'dev.json');
}

/** The running local stack's addresses, if `perimeter dev` is up; stale files are ignored. */
export function readDevAddresses(stateDir: string): Omit<DevAddresses, 'pid'> | undefined {
  try {
    const { pid, ...addresses } = JSON.parse(
      fs.readFileSync(devAddressesFile(stateDir), 'utf8'),
    ) as DevAddresses;
    process.kill(pid, 0);
    return addresses;
  } catch {
    return undefined;
  }
}
