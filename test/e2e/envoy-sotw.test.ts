import { describeEnvoy } from '../support/envoy.js';
import { envoySuite } from './envoy-suite.js';

describeEnvoy('real Envoy over SotW ADS', () => envoySuite('sotw'), { timeout: 60_000 });
