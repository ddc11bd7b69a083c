import { describe, expect, it } from 'vitest';
import { advertisedBrokerUrl } from '../../../../../cloud/fleet/broker/advertise.js';

// Issue 14: with --mqtt-host 0.0.0.0, `tokens enroll` told devices to connect to localhost.
describe('the broker address devices are told', () => {
  it('names this host, or the first --tls-host, when the broker listens on every interface', () => {
    expect(advertisedBrokerUrl('mqtts://localhost:8883', '0.0.0.0', true, 'cloud.lan')).toBe(
      'mqtts://cloud.lan:8883',
    );
    expect(
      advertisedBrokerUrl(
        'mqtts://localhost:8883',
        '0.0.0.0',
        { hostnames: ['broker.example.com', 'b2'] },
        'x',
      ),
    ).toBe('mqtts://broker.example.com:8883');
    expect(advertisedBrokerUrl('mqtt://localhost:1883', '::', undefined, 'cloud.lan')).toBe(
      'mqtt://cloud.lan:1883',
    );
  });

  it('keeps the address of a broker on one interface', () => {
    expect(advertisedBrokerUrl('mqtts://localhost:8883', '127.0.0.1', true, 'cloud.lan')).toBe(
      'mqtts://localhost:8883',
    );
    expect(advertisedBrokerUrl('mqtt://10.0.0.5:1883', '10.0.0.5', undefined)).toBe('mqtt://10.0.0.5:1883');
  });
});
