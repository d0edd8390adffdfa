// Money and dates as a shopper reads them. Amounts arrive in minor units
// (cents): the currency says how many digits follow the decimal point.

const LOCALE = 'en';

export function money({ amount, currency }) {
  const format = new Intl.NumberFormat(LOCALE, { style: 'currency', currency });
  const digits = format.resolvedOptions().maximumFractionDigits;
  return format.format(amount / 10 ** digits);
}

export function when(timestamp) {
  if (!timestamp) return 'never';
  return new Date(timestamp).toLocaleString(LOCALE, { dateStyle: 'medium', timeStyle: 'short' });
}
