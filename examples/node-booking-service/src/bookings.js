'use strict';
// `POST /api/bookings` (CONTRACT.md §5.1): the request's shape and checks, then Cal.com's flow
// in one `booking_creation` span — seats, the Google Calendar event, the Stripe PaymentIntent,
// the booking stored with its webhook jobs, the mandatory reminders. Messages, attributes and
// the order of steps are those of harness/booking/create.rs.

const { eventTypeOf } = require('./config');
const clock = require('./clock');
const { inSpan, log, currentCarrier, SpanKind, propagation, ROOT_CONTEXT } = require('./telemetry');

const TARGET = 'trace_harness::booking::create';
const JOBS_TARGET = 'trace_harness::booking::jobs';
const MAX_ATTENDEES = 100;
const BOOKING_KEYS = ['eventTypeId', 'title', 'start', 'end', 'responses', 'guests'];

/** A refusal answered with a status and Cal.com's `{"message": …}`. */
class Refusal extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * @typedef {{name: string, email: string}} Attendee
 * @typedef {object} BookingRequest
 * @property {number} eventTypeId
 * @property {string | null} title
 * @property {string} start
 * @property {string} end
 * @property {Attendee} responses
 * @property {Attendee[]} guests
 */

/**
 * Why `value` is not an attendee (`{name, email}`, nothing else); undefined if it is one.
 * @param {unknown} value
 * @param {string} where
 * @returns {string | undefined}
 */
function attendeeProblem(value, where) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `${where}: invalid type, expected an object with \`name\` and \`email\``;
  }
  const a = /** @type {Record<string, unknown>} */ (value);
  for (const key of Object.keys(a)) {
    if (key !== 'name' && key !== 'email') return `${where}: unknown field \`${key}\`, expected \`name\` or \`email\``;
  }
  for (const key of ['name', 'email']) {
    if (!(key in a)) return `${where}: missing field \`${key}\``;
    if (typeof a[key] !== 'string') return `${where}.${key}: invalid type, expected a string`;
  }
  return undefined;
}

/**
 * The booking request in `body`, or the 422 its shape earns (a missing or unknown key, a wrong
 * type), as serde's `deny_unknown_fields` reading of the in-process service refuses it.
 * @param {unknown} body
 * @returns {BookingRequest}
 */
function readBookingRequest(body) {
  const refuse = (/** @type {string} */ why) => new Refusal(422, `Failed to deserialize the JSON body into the target type: ${why}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw refuse('invalid type, expected a booking object');
  }
  const b = /** @type {Record<string, unknown>} */ (body);
  for (const key of Object.keys(b)) {
    if (!BOOKING_KEYS.includes(key)) {
      throw refuse(`unknown field \`${key}\`, expected one of ${BOOKING_KEYS.map((k) => `\`${k}\``).join(', ')}`);
    }
  }
  for (const key of ['eventTypeId', 'start', 'end', 'responses']) {
    if (!(key in b)) throw refuse(`missing field \`${key}\``);
  }
  const id = b.eventTypeId;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
    throw refuse('eventTypeId: invalid type, expected u64');
  }
  if (b.title !== undefined && b.title !== null && typeof b.title !== 'string') {
    throw refuse('title: invalid type, expected a string');
  }
  if (typeof b.start !== 'string') throw refuse('start: invalid type, expected a string');
  if (typeof b.end !== 'string') throw refuse('end: invalid type, expected a string');
  const responsesProblem = attendeeProblem(b.responses, 'responses');
  if (responsesProblem) throw refuse(responsesProblem);
  /** @type {Attendee[]} */
  let guests = [];
  if (b.guests !== undefined) {
    if (!Array.isArray(b.guests)) throw refuse('guests: invalid type, expected a sequence');
    b.guests.forEach((g, i) => {
      const problem = attendeeProblem(g, `guests[${i}]`);
      if (problem) throw refuse(problem);
    });
    guests = b.guests.map((g) => ({ name: g.name, email: g.email }));
  }
  const r = /** @type {Attendee} */ (b.responses);
  return {
    eventTypeId: id,
    title: typeof b.title === 'string' ? b.title : null,
    start: b.start,
    end: b.end,
    responses: { name: r.name, email: r.email },
    guests,
  };
}

/**
 * What the service checks before it starts anything; the refusal's message, if any.
 * @param {BookingRequest} request
 * @param {import('./config').EventType} eventType
 * @returns {string | undefined}
 */
function refusalOf(request, eventType) {
  if (request.start.trim() === '' || request.end.trim() === '') return '`start` and `end` must not be empty';
  if (request.guests.length + 1 > MAX_ATTENDEES) return `at most ${MAX_ATTENDEES} attendees per booking`;
  const attendees = [request.responses, ...request.guests];
  for (let i = 0; i < attendees.length; i++) {
    if (attendees[i].name.trim() === '') return `attendee ${i + 1} has no name`;
    if (!attendees[i].email.includes('@')) {
      return `attendee ${i + 1} has no valid email: ${JSON.stringify(attendees[i].email)}`;
    }
  }
  if (eventType.seats === null && request.guests.length > 0) {
    return `event type ${eventType.id} is not seated: one attendee per booking`;
  }
  return undefined;
}

/**
 * `error.message` of a Google API error body, or the status.
 * @param {number} status
 * @param {string} body
 */
function googleErrorMessage(status, body) {
  try {
    const message = JSON.parse(body)?.error?.message;
    if (typeof message === 'string') return message;
  } catch {
    // Not JSON: the status says it.
  }
  return `HTTP ${status}`;
}

/**
 * `error.message (error.code)` of a Stripe error body, or the status.
 * @param {number} status
 * @param {string} body
 */
function stripeErrorMessage(status, body) {
  try {
    const error = JSON.parse(body)?.error;
    if (typeof error?.message === 'string') {
      return typeof error.code === 'string' ? `${error.message} (${error.code})` : error.message;
    }
  } catch {
    // Not JSON: the status says it.
  }
  return `HTTP ${status}`;
}

/**
 * The booking flow's handlers over the service's parts.
 * @param {{config: import('./config').Config, store: ReturnType<typeof import('./store').openStore> extends Promise<infer S> ? S : never,
 *   ids: ReturnType<typeof import('./ids').serviceIds>, http: ReturnType<typeof import('./outbound').outbound>}} app
 */
function bookingFlow(app) {
  const { config, store, ids, http } = app;
  const jobContext = () => (config.bugs.has('orphan_jobs') ? undefined : currentCarrier());

  /**
   * `POST /api/bookings` once its body is read: `{status, body, traceId?}`.
   * @param {unknown} body  the parsed JSON
   * @param {Record<string, string | string[] | undefined>} headers
   * @returns {Promise<{status: number, body: unknown, traceId?: string}>}
   */
  async function createBooking(body, headers) {
    const request = readBookingRequest(body);
    const eventType = eventTypeOf(config, request.eventTypeId);
    const refusal = refusalOf(request, eventType);
    // A booking that will be made gets its uid first, so its span opens with every field.
    const uid = refusal === undefined ? ids.bookingUid() : undefined;
    // Only this route continues an inbound context (CONTRACT.md §7.1).
    const parent = propagation.extract(ROOT_CONTEXT, headers);
    /** @type {string | undefined} */
    let traceId;
    const attributes = { event_type_id: request.eventTypeId, ...(uid !== undefined ? { booking_uid: uid } : {}) };
    const answer = await inSpan('booking_creation', { kind: SpanKind.SERVER, attributes, parent }, async (span) => {
      traceId = span?.spanContext().traceId;
      if (refusal !== undefined || uid === undefined) {
        log('warn', TARGET, `Booking refused: ${refusal}`);
        return { status: 400, body: { message: refusal } };
      }
      try {
        return { status: 201, body: await bookingCreation(uid, request, eventType) };
      } catch (e) {
        if (!(e instanceof Refusal)) throw e;
        // A server span whose answer is 5xx is in error, with the reason (OpenTelemetry's HTTP
        // conventions): the first error event's message becomes its status.
        if (e.status >= 500 && !config.bugs.has('unmarked_server_errors')) log('error', TARGET, e.message);
        return { status: e.status, body: { message: e.message } };
      }
    });
    return { ...answer, traceId };
  }

  /**
   * Cal.com's booking flow for an admitted request, inside its `booking_creation` span.
   * @param {string} uid
   * @param {BookingRequest} request
   * @param {import('./config').EventType} eventType
   */
  async function bookingCreation(uid, request, eventType) {
    log(
      'info',
      TARGET,
      `Booking creation started for eventTypeId: ${request.eventTypeId}${eventType.price !== null ? ', payment required' : ''}`,
    );
    const attendees = [request.responses, ...request.guests];
    if (eventType.seats !== null) {
      const seats = eventType.seats;
      await inSpan('handle_seats', { attributes: { seats, requested: attendees.length } }, async () => {
        log('info', TARGET, `Processing seated booking: ${attendees.length} of ${seats} seats`);
        if (attendees.length > seats) {
          const message = `Not enough seats: ${seats} available, ${attendees.length} requested`;
          log('error', TARGET, message);
          throw new Refusal(409, message);
        }
      });
    }
    const title = request.title ?? `Meeting with ${request.responses.name}`;
    const calendarEventId =
      config.googleCalendarUrl === ''
        ? null
        : await inSpan('calendar_event_creation', { kind: SpanKind.CLIENT, attributes: { calendar: 'google' } }, () =>
            createCalendarEvent(uid, title, request, attendees),
          );
    const payment =
      eventType.price === null
        ? undefined
        : await inSpan('payment_processing', { attributes: { provider: 'stripe' } }, () =>
            createPayment(uid, /** @type {number} */ (eventType.price), eventType.currency),
          );
    const booking = {
      id: 0,
      uid,
      status: payment ? 'PENDING' : 'ACCEPTED',
      eventTypeId: request.eventTypeId,
      title,
      startTime: request.start,
      endTime: request.end,
      attendees,
      calendarEventId,
      ...(payment ? { payment: payment.summary } : {}),
    };
    booking.id = await inSpan(
      'webhook_scheduling',
      { attributes: { trigger_event: 'BOOKING_CREATED', subscribers: config.webhookSubscribers.length } },
      async () => storeBookingWithWebhooks(booking, payment?.record),
    );
    if (eventType.reminders) {
      await inSpan('schedule_mandatory_reminder', { attributes: { attendees: attendees.length } }, () =>
        scheduleReminders(booking),
      );
    }
    return booking;
  }

  /**
   * `EventManager.create`: inserts the Google Calendar event; a failure is logged and the
   * booking goes on without it.
   * @param {string} uid
   * @param {string} title
   * @param {BookingRequest} request
   * @param {Attendee[]} attendees
   * @returns {Promise<string | null>}
   */
  async function createCalendarEvent(uid, title, request, attendees) {
    log('info', TARGET, 'EventManager.create started');
    // Keys in the order the in-process service writes them (serde_json sorts them).
    const body = JSON.stringify({
      attendees: attendees.map((a) => ({ displayName: a.name, email: a.email })),
      description: `Booking ${uid}`,
      end: { dateTime: request.end },
      start: { dateTime: request.start },
      summary: title,
    });
    try {
      const reply = await http.post(
        `${config.googleCalendarUrl}/calendar/v3/calendars/primary/events`,
        'application/json',
        body,
        {},
        config.timeoutsUs.calendar,
      );
      if (reply.status >= 200 && reply.status < 300) {
        log('debug', TARGET, 'Google Calendar event created');
        try {
          const id = JSON.parse(reply.body)?.id;
          return typeof id === 'string' ? id : null;
        } catch {
          return null;
        }
      }
      log('error', TARGET, `Google Calendar API error: ${googleErrorMessage(reply.status, reply.body)}`);
    } catch (e) {
      log('error', TARGET, `Google Calendar API error: ${/** @type {Error} */ (e).message}`);
    }
    return null;
  }

  /**
   * Creates the booking's PaymentIntent at Stripe, carrying this span's `traceparent` in its
   * metadata: Stripe hands the metadata back with its event, however much later.
   * @param {string} uid
   * @param {number} amount
   * @param {string} currency
   */
  async function createPayment(uid, amount, currency) {
    const context = currentCarrier();
    const form = new URLSearchParams();
    form.append('amount', String(amount));
    form.append('currency', currency);
    form.append('payment_method_types[]', 'card');
    form.append('metadata[bookingUid]', uid);
    if (context?.traceparent) form.append('metadata[traceparent]', context.traceparent);
    /** @type {import('./outbound').Reply | undefined} */
    let reply;
    /** @type {string | undefined} */
    let failure;
    try {
      reply = await http.post(
        `${config.stripeUrl}/v1/payment_intents`,
        'application/x-www-form-urlencoded',
        form.toString(),
        { 'idempotency-key': `booking-${uid}-payment` },
        config.timeoutsUs.stripe,
      );
    } catch (e) {
      failure = /** @type {Error} */ (e).message;
    }
    const createdAtUs = clock.now();
    /** @type {any} */
    let intent;
    if (failure === undefined && reply) {
      if (reply.status < 200 || reply.status >= 300) {
        failure = stripeErrorMessage(reply.status, reply.body);
      } else {
        try {
          intent = JSON.parse(reply.body);
        } catch {
          failure = "malformed PaymentIntent in Stripe's response";
        }
        if (failure === undefined && (typeof intent?.id !== 'string' || typeof intent?.client_secret !== 'string')) {
          failure = 'PaymentIntent without id or client_secret';
        }
      }
    }
    if (failure !== undefined) {
      log('error', TARGET, `Stripe API error: ${failure}`);
      throw new Refusal(502, `Payment could not be initiated: ${failure}`);
    }
    log('info', TARGET, 'Payment initiated with Stripe', { payment_intent: intent.id });
    return {
      summary: { paymentIntent: intent.id, clientSecret: intent.client_secret, amount, currency },
      record: { externalId: intent.id, amount, currency, createdAtUs, context },
    };
  }

  /**
   * Stores the booking (attendees, payment) and one `BOOKING_CREATED` job per subscriber in one
   * transaction; each job's payload carries this span's context as `_traceContext`.
   * @param {any} booking
   * @param {import('./store').NewBooking['payment']} payment
   * @returns {Promise<number>}
   */
  async function storeBookingWithWebhooks(booking, payment) {
    const subscribers = config.webhookSubscribers;
    if (subscribers.length === 1) log('info', TARGET, 'Scheduling BOOKING_CREATED webhook');
    if (subscribers.length > 1) log('info', TARGET, `Scheduling BOOKING_CREATED webhook for ${subscribers.length} subscribers`);
    const nowUs = clock.now();
    const context = jobContext();
    return store.insertBooking(
      {
        uid: booking.uid,
        eventTypeId: booking.eventTypeId,
        title: booking.title,
        startTime: booking.startTime,
        endTime: booking.endTime,
        status: booking.status,
        attendees: booking.attendees,
        calendarEvent: booking.calendarEventId,
        requestId: clock.currentFlow()?.requestId ?? '',
        createdAtUs: nowUs,
        payment,
      },
      (bookingId) => {
        // Keys in the order the in-process service writes them (serde_json sorts them); the
        // context goes last, and is taken out again before the body is signed and sent.
        const payload = JSON.stringify({
          payload: {
            attendees: booking.attendees.map((/** @type {Attendee} */ a) => ({ name: a.name, email: a.email })),
            bookingId,
            endTime: booking.endTime,
            eventTypeId: booking.eventTypeId,
            startTime: booking.startTime,
            status: booking.status,
            title: booking.title,
            uid: booking.uid,
          },
          triggerEvent: 'BOOKING_CREATED',
          ...(context ? { _traceContext: context } : {}),
        });
        return subscribers.map((url) => ({ triggerEvent: 'BOOKING_CREATED', subscriberUrl: url, payload }));
      },
    );
  }

  /**
   * `scheduleMandatoryReminder`: one reminder per attendee, sent later by the reminders cron in
   * the booking's trace; scheduled sends share a SendGrid batch.
   * @param {any} booking
   */
  async function scheduleReminders(booking) {
    const n = booking.attendees.length;
    log('info', TARGET, `Scheduling reminders for ${n} attendee${n === 1 ? '' : 's'}`);
    const batchId = config.emailUrl === '' ? null : await createBatch();
    const context = jobContext();
    const nowUs = clock.now();
    store.insertReminders(
      booking.id,
      booking.attendees.map((/** @type {Attendee} */ a, /** @type {number} */ i) => ({
        seat: i + 1,
        name: a.name,
        email: a.email,
        batchId,
      })),
      context,
      nowUs,
    );
  }

  /**
   * A batch id for scheduled sends (`POST /v3/mail/batch`); null if the provider gives none.
   * @returns {Promise<string | null>}
   */
  async function createBatch() {
    try {
      const reply = await http.post(
        `${config.emailUrl}/v3/mail/batch`,
        'application/json',
        '',
        { authorization: 'Bearer SG.trace-harness' },
        config.timeoutsUs.email,
      );
      if (reply.status >= 200 && reply.status < 300) {
        log('debug', JOBS_TARGET, 'Email batch created');
        try {
          const id = JSON.parse(reply.body)?.batch_id;
          return typeof id === 'string' ? id : null;
        } catch {
          return null;
        }
      }
      log('warn', JOBS_TARGET, `Email batch not created: HTTP ${reply.status}`);
    } catch (e) {
      log('warn', JOBS_TARGET, `Email batch not created: ${/** @type {Error} */ (e).message}`);
    }
    return null;
  }

  return { createBooking };
}

module.exports = { bookingFlow, Refusal };
