#pragma once
// One call through the B2BUA: two independent dialogs, one per realm. The side that sent
// the INVITE is the "caller" leg, the side the SBC sends it on is the "callee" leg.
// Signaling thread only.

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/media_relay.h"
#include "metrics/call_series.h"
#include "metrics/sip_series.h"
#include "metrics/metrics.h"
#include "policy/admission.h"
#include "signaling/body_filter.h"
#include "signaling/multipart.h"
#include "signaling/sdp.h"
#include "signaling/session_timer.h"
#include "signaling/sofia.h"

namespace sbc::signaling {

// What calls need from the signaling plane.
struct CallEnvironment {
  su_root_t* root = nullptr;  // the signaling thread's, for the calls' timers
  nta_agent_t* accessAgent = nullptr;
  nta_agent_t* coreAgent = nullptr;
  const config::Config* settings = nullptr;
  metrics::Metrics* metrics = nullptr;
  metrics::CallSeriesCache* callSeries = nullptr;
  metrics::SipMessageSeries* sipSeries = nullptr;
  dataplane::MediaRelay* relay = nullptr;
  policy::IpAddress accessMedia;  // the SBC's media address in each realm
  policy::IpAddress coreMedia;
  // Media streams are reported here when opened and closed, so a media timeout can find
  // its call.
  std::function<void(dataplane::StreamId, std::uint64_t callId)> streamOpened;
  std::function<void(dataplane::StreamId)> streamClosed;
  // Called once when a call is over; the plane destroys it later (never inside its own
  // callback).
  std::function<void(std::uint64_t callId)> ended;
  void countResponse(const char* realm, int code) const;
  // A request that reached a call (in-dialog, or the ACK or CANCEL of a transaction) rather
  // than the agent's front door, which counts the others.
  void countRequest(const char* realm, const char* method) const;
};

// Where a call's INVITE goes in the other realm.
struct CallRoute {
  // Tried in order: the next one when a hop answers 503, times out, cannot be reached or
  // stays silent for `silentHopTimeoutMs` having sent nothing but 100 Trying.
  std::vector<config::HostPort> targets;
  std::uint32_t silentHopTimeoutMs = 0;  // 0: only Timer B gives up on a hop
  // Answers a 401/407 from the callee once per hop (calls towards a trunk that challenges).
  std::optional<config::Credentials> credentials;
  // The access side is a subscriber line's terminal rather than a trunk.
  struct Line {
    std::string aor;  // the line, "user@host"
    // Where the terminal really is (its REGISTER's or INVITE's source, through its NAT):
    // its media is latched from inside this address, and every request to it goes there
    // ("sip:ADDRESS:PORT;transport=udp"), whatever its Contact says.
    policy::IpAddress terminal;
    std::string terminalRoute;
    // A call to the line: its terminal's Contact (the INVITE's Request-URI).
    std::string contact;
  };
  std::optional<Line> line;
};

class Call {
 public:
  // Takes over an admitted initial INVITE that arrived in `callerRealm`: from a trunk
  // (access; relayed to the core's next hops) or from the core (relayed to the trunk's
  // configured target). Answers it, relays it along `route` in the other realm and owns both
  // dialogs from then on. `trunk` and `trunkPrefixes` name the trunk on the access side;
  // `trustedTrunk` lets P-Asserted-Identity cross (trunks.trusted).
  Call(CallEnvironment& environment, std::uint64_t id, std::string trunk,
       std::vector<policy::IpPrefix> trunkPrefixes, policy::CallSlot slot, msg_t* invite,
       sip_t* sip, dataplane::Realm callerRealm, CallRoute route, bool trustedTrunk);
  ~Call();
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  // A 2xx to an INVITE that no client transaction took (nta let go of it: the SBC releases
  // an answered INVITE 64*T1 after its ACK, a re-INVITE's once its ACK is sent) but that
  // belongs to a call's dialog on `agent`: the call acknowledges it again, as RFC 3261
  // 13.2.2.4 has a UAC do for every 2xx retransmission. False when no call's dialog has it.
  static bool acknowledgeStrayAnswer(nta_agent_t* agent, const sip_t* sip);

  std::uint64_t id() const { return id_; }
  bool over() const { return state_ == State::over; }
  // Ends a call the SBC itself wants gone (drain, media timeout): BYE or CANCEL on both
  // sides as fits; the call is counted with `result`.
  void terminate(metrics::CallResult result, const char* why);

  // A line's terminal now signals from `address` (`route`: "sip:ADDRESS:PORT;transport=T"):
  // a call of `aor` whose terminal was at `from` sends its requests there and latches its
  // media afresh within the new address. Any other call ignores it.
  void lineTerminalMoved(const std::string& aor, const policy::IpAddress& from,
                         const policy::IpAddress& address, const std::string& route);

 private:
  enum class State { calling, early, answered, confirmed, over };

  static int onCalleeResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  static int onCallerPrack(void* magic, nta_reliable_t* reliable, nta_incoming_t* prack,
                           const sip_t* sip);

  // The INVITE towards the current hop of the route, on the callee leg (made for the hop
  // if there is none), carrying `credentials` when answering a challenge.
  bool sendCalleeInvite(const msg_header_t* credentials);
  // Where a request on `leg` is sent when not to its remote target: a line's terminal,
  // through its NAT binding, for the access leg of a line's call; else null.
  const url_string_t* routeOf(const nta_leg_t* leg) const;
  static metrics::CallDirection directionOf(dataplane::Realm callerRealm, bool line);

  void rememberLineRequest(const sip_t* sip);
  // The terminal's route and media source become `address` / `route` (a move).
  void followTerminal(const policy::IpAddress& address, const std::string& route);
  // The core's 401/407 to a line's INVITE, relayed to the terminal with its challenge.
  void replyCallerChallenge(int status, const sip_t* challenge);
  // Retries are run from a timer, never inside the callback of the transaction they
  // replace: the next hop after a failure or silence, the same hop with credentials, or
  // the same hop with the longer session interval its 422 asked for. After the answer it
  // has one more job: letting go of the callee's INVITE transaction once its 2xx can no
  // longer be retransmitted.
  enum class Retry { none, nextHop, withCredentials, longerInterval, releaseInvite };
  void scheduleRetry(Retry retry, std::uint32_t delayMs);
  static void onRetryTimer(void* rootMagic, su_timer_t* timer, void* arg);
  void retry();
  // Before the same hop is asked again (credentials, a longer session interval): lets go
  // of the failed INVITE and of the early dialogs its reliable provisionals set up. False
  // when nta cannot make the new leg.
  bool forgetEarlyDialogs();
  bool mayTryNextHop(int status) const;
  bool prepareCredentials(int status, const sip_t* challenge);
  // A reliable provisional response from the callee (RFC 3262): its fork, or null for a
  // retransmission (or one nta cannot follow), which is not relayed.
  struct EarlyFork;
  EarlyFork* reliableFork(const sip_t* sip);
  // PRACKs the callee's reliable provisional response `rseq` in `fork`'s early dialog with
  // `body`: `response` is that response while its callback runs, else null (the RAck is
  // then made from `rseq`). `prack` gets the PRACK's response.
  struct PrackRelay;
  nta_outgoing_t* prackCallee(EarlyFork& fork, std::uint32_t rseq, const sip_t* response,
                              PrackRelay* prack = nullptr, const OutgoingBody& body = {},
                              const std::string& headers = "");
  // The same at once, nobody waiting for its answer. False when nta refuses.
  bool prackCalleeNow(EarlyFork& fork, std::uint32_t rseq, const sip_t* response);
  // Whether a reliable provisional response the SBC must PRACK itself offers the late
  // offer's SDP, which its PRACK would have to answer; refuseUnanswerableOffer ends the call.
  bool offersUnanswerably(const sip_t* response) const;
  void refuseUnanswerableOffer(int status);
  // A forking callee: each To tag is an early dialog of its own (RFC 3261 12.1.2). The
  // first follows calleeLeg_; each further one gets a leg of its own on the same Call-ID
  // and From tag. A fork that sends reliable provisionals gets the INVITE narrowed to it
  // (nta_outgoing_tagged), which PRACKs need; the INVITE as sent stays, so the other
  // forks' responses keep reaching the call.
  struct EarlyFork {
    std::string tag;
    nta_leg_t* leg = nullptr;
    nta_outgoing_t* invite = nullptr;  // narrowed to this fork; null until it is needed
    // A late offer of this fork's own (see foreignOffer), as the fork wrote it.
    std::string offerSdp;
    // The RSeq of its reliable provisional response whose PRACK waits for the caller's
    // answer to the late offer, which it must carry; 0 for none.
    std::uint32_t owedPrack = 0;
    bool answered = false;  // the SBC's answer to offerSdp went in a PRACK
    bool refused = false;   // offerSdp does not fit the caller's answer (answerFits)
  };
  EarlyFork* forkOf(const char* tag);
  // The fork with `response`'s To tag, made (with its dialog routed by `response`) if new;
  // with `narrow`, its INVITE narrowed to it. Null if nta refuses.
  EarlyFork* openFork(const sip_t* response, bool narrow);
  bool isCalleeInvite(const nta_outgoing_t* request) const;
  // The answered fork becomes the callee's dialog; the others are ended (BYE in their early
  // dialog) once the answer is acknowledged.
  void endLosingForks();
  // A late offer from a forking callee reaches the caller once: the first offer sent to it
  // reliably (offerFork_), which the caller answers in its PRACK. A response with SDP from
  // another fork is that fork's own offer (RFC 3264: each early dialog negotiates on its
  // own), which the caller never sees (it gets the offer it has again) and the SBC answers
  // itself from the caller's answer: in the fork's PRACK (at once, or once the caller's
  // answer comes) or in the ACK of the fork's 2xx. A fork whose offer the answer does not
  // fit (answerFits) gets every stream rejected; if it answers the call, the call fails.
  bool foreignOffer(const sip_t* response) const;
  // The SDP of `message`'s body (alone or its multipart's SDP part), empty if none.
  std::string sdpIn(const sip_t* message) const;
  bool fromForeignFork(const sip_t* response) const;
  // The SBC's answer to `fork`'s offerSdp: the caller's answer as sent to the offer's fork,
  // or, when that does not fit, the fork's offer with every stream rejected (port 0).
  std::string answerForFork(EarlyFork& fork);
  // PRACKs `fork`'s reliable provisional response `rseq` with answerForFork. False if nta
  // refuses.
  bool answerForkInPrack(EarlyFork& fork, std::uint32_t rseq, const sip_t* response);
  // Once the caller's answer is there: the forks whose PRACK waited for it get it.
  void answerOwedPracks();
  // A foreign fork won (its 2xx came): its offer is answered (in the ACK, unless its PRACK
  // carried the answer) and the callee leg's media moves to what it offered. False when
  // the answer does not fit: the fork's ACK then rejects every stream (ackAnswer_).
  bool adoptWinningOffer();
  // The call cannot go on with the winning fork's media (adoptWinningOffer failed).
  void refuseWinningOffer();
  // PRACK end to end (RFC 3262 with RFC 6337 3.2's offers and answers in PRACK): a reliable
  // provisional response of the callee relayed reliably to the caller is PRACKed towards
  // the callee only once the caller PRACKs it, with the caller's PRACK body (the answer to
  // a late offer the provisional response carried, a new offer, SIP-I parts) anchored and
  // crossing as any; the caller's PRACK is answered with the callee's answer to that PRACK.
  // Owned by the call from the relayed provisional response until the caller's PRACK has
  // its answer (or nta gives up on it).
  PrackRelay* prackOf(const nta_reliable_t* reliable);
  // Frees nta's handle of a reliable provisional response once the caller has PRACKed it.
  void releasePracked(nta_reliable_t* reliable);
  bool prackAwaited(const EarlyFork& fork, std::uint32_t rseq) const;
  int relayPrack(PrackRelay& prack, nta_incoming_t* incoming, const sip_t* sip);
  // The caller's answer to the late offer in its PRACK (`split`: the PRACK's body taken
  // apart), anchored and recorded (lateOfferAnswered_, sdpSentOn_). False, logged with the
  // reason in `error`, when the PRACK does not answer.
  bool acceptLateAnswer(const sip_t* sip, const std::optional<SessionBody>& split,
                        std::string& rewritten, std::string& error);
  // The caller's PRACK answering the late offer after a fork answered the INVITE.
  int takeLateAnswer(nta_incoming_t* incoming, const sip_t* sip);
  static int onPrackResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  void answerPrack(PrackRelay& prack, int status, const sip_t* sip);
  // A caller's PRACK answered by the SBC itself (`status`, no body), counted.
  void replyPrack(nta_incoming_t* incoming, int status);
  void freePrack(PrackRelay& prack);
  void dropPracks();  // answers what is still pending (481) and frees every PRACK relay
  static int onCallerAckOrCancel(void* magic, nta_incoming_t* request, const sip_t* sip);
  static int onCallerRequest(void* magic, nta_leg_t* leg, nta_incoming_t* request,
                             const sip_t* sip);
  static int onCalleeRequest(void* magic, nta_leg_t* leg, nta_incoming_t* request,
                             const sip_t* sip);

  int relayInDialog(bool fromCaller, nta_incoming_t* request, const sip_t* sip);

  // One in-dialog request relayed from one leg to the other (re-INVITE, UPDATE, INFO,
  // OPTIONS, NOTIFY, MESSAGE): the server transaction it came on and the client transaction
  // that carries it on. Owned by the call; freed once its final response is relayed (a
  // re-INVITE's once its 2xx is acknowledged) or when the call ends.
  struct Relay;
  static int onRelayResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  static int onRelayAckOrCancel(void* magic, nta_incoming_t* request, const sip_t* sip);
  void relayResponse(Relay& relay, const sip_t* sip);
  void relayAck(Relay& relay, const sip_t* sip);
  void freeRelay(Relay& relay);
  // After relaying a CANCEL of a re-INVITE: the other side has 64*T1 to give its final
  // response, else the re-INVITE is abandoned (at most one is pending: glare gives 491).
  void awaitCancelledFinal();
  static void onCancelledTimer(void* rootMagic, su_timer_t* timer, void* arg);
  void abandonCancelled();
  void dropRelays();  // answers what is still pending (487/481) and frees every relay
  bool offerPending() const;
  // Relays a callee's response (or sends the SBC's own) to the caller's INVITE. With
  // `reliable`, a provisional response goes reliably to a caller that takes 100rel; the
  // result says whether it did (the handle nta PRACK callbacks name) and whether the
  // response carried the callee's late offer.
  struct CallerReply {
    nta_reliable_t* reliable = nullptr;
    bool lateOffer = false;
  };
  CallerReply replyCaller(int status, const char* phrase, const sip_t* response,
                          bool reliable = false);
  // A BYE on `leg`, carrying the allow-listed headers of `relayedBye` (the BYE that caused
  // it), if any.
  void sendBye(nta_leg_t* leg, const sip_t* relayedBye = nullptr);
  void sendAck(nta_leg_t* leg, nta_outgoing_t* invite, const OutgoingBody& body = {});
  // The ACK of a 2xx retransmitted after its INVITE transaction is gone: the same CSeq and
  // body as the ACK sent for it, if that is the last one sent on the leg.
  void acknowledgeAgain(nta_leg_t* leg, const sip_t* answer);
  void finish(metrics::CallResult result, const char* why);
  void observeSetup();  // once: the caller's INVITE has its final response
  bool wasAnswered() const { return state_ == State::answered || state_ == State::confirmed; }

  // Session timers (session_timer.h): the SBC's own refresh of a leg and the end of a call
  // whose peer did not refresh in time. A refresh is an UPDATE without SDP, or, towards a
  // peer that does not take UPDATE (its Allow lacks it, or it refused one 405/501), a
  // re-INVITE offering the SDP the SBC last sent on that leg, unchanged (RFC 4028 9).
  struct SessionRefresh {
    Call* call = nullptr;
    dataplane::Realm leg = dataplane::Realm::access;
    nta_outgoing_t* request = nullptr;
    bool byInvite = false;
    // A re-INVITE's 2xx was acknowledged: the transaction is kept (it re-sends the ACK on a
    // retransmitted 2xx) until the next refresh or the end of the call.
    bool acknowledged = false;
  };
  static int onSessionRefreshResponse(void* magic, nta_outgoing_t* request, const sip_t* sip);
  void refreshSession(dataplane::Realm leg);
  // The 2xx to a refresh re-INVITE: its answer must describe the same streams; it only
  // re-programs that leg's side of them. False when it cannot be used.
  bool recheckRefreshAnswer(dataplane::Realm leg, const sip_t* answer);
  bool refreshPending() const;
  void sessionExpired(dataplane::Realm leg);
  void countSessionTimer(const char* result);
  // `sip`'s body taken apart for an offer or answer (body_filter.h splitSessionBody);
  // nullopt with `error`, counted as a refused multipart body, when it cannot be.
  std::optional<SessionBody> sessionBodyOf(dataplane::Realm from, const char* message,
                                           const sip_t* sip, std::string& error);
  // Counts a body that crosses without some of its parts (or without itself: not SDP, not
  // listed), once per message.
  void countLeftOutParts(dataplane::Realm from, const char* message, const SessionBody& body);
  // One sbc_sip_bodies_refused_total count for a `message` ("request"/"response") `from`.
  void countBodyRefused(dataplane::Realm from, const char* message, const char* reason);
  // The body of `sip`, an in-dialog "request" or "response" from `from` other than an
  // offer/answer, as it crosses (body_filter.h filterBody: a sipfrag cut to its status
  // line, a multipart body rebuilt with a fresh boundary, any other as it came); nullopt,
  // counted, when sip.body_types does not allow it.
  std::optional<OutgoingBody> crossingBody(dataplane::Realm from, const char* message,
                                           const sip_t* sip);
  void stopSessionTimers();
  bool calleePending() const;

  // Media anchoring. The caller's offer opens one relay stream per accepted m= line and is
  // rewritten for the core; the callee's answer completes the streams and is rewritten for
  // the trunk. `sdp` is the SDP body, or a multipart body's SDP part. False (with `error`)
  // when the SDP is unusable or no ports are left.
  bool anchorOffer(dataplane::Realm offerer, std::string_view sdp, std::string& rewritten,
                   std::string& error);
  bool anchorAnswer(dataplane::Realm answerer, std::string_view sdp, std::string& rewritten,
                    std::string& error);
  void releaseMedia();
  // Closes one relay stream (if open) and forgets it.
  void closeStream(std::optional<dataplane::StreamEndpoints>& stream);
  // Renegotiation inside the dialog. An offer from `from` updates that side of each stream
  // (its address, its hold state) and is rewritten for the other realm; the answer to it
  // programs both sides and is rewritten for the offerer's realm. On failure of the
  // exchange, restoreMedia() programs the streams from the last completed exchange again.
  bool reoffer(dataplane::Realm from, std::string_view sdp, std::string& rewritten,
               std::string& error);
  bool reanswer(dataplane::Realm from, std::string_view sdp, std::string& rewritten,
                std::string& error);
  void programStreams(const SdpDescription& access, const SdpDescription& core);
  void restoreMedia();
  // Closes the relay streams a pending re-offer opened (new m= lines) and forgets them.
  void closeStreamsOfPendingOffer();
  dataplane::LegMedia legMedia(dataplane::Realm realm, const SdpStream& own,
                               const SdpStream& other) const;
  nta_leg_t* legOf(dataplane::Realm realm) const {
    return realm == callerRealm_ ? callerLeg_ : calleeLeg_;
  }
  dataplane::Realm calleeRealm() const { return dataplane::otherRealm(callerRealm_); }
  nta_agent_t* agentOf(dataplane::Realm realm) const {
    return realm == dataplane::Realm::access ? environment_.accessAgent : environment_.coreAgent;
  }
  const policy::IpAddress& mediaOf(dataplane::Realm realm) const {
    return realm == dataplane::Realm::access ? environment_.accessMedia : environment_.coreMedia;
  }

  CallEnvironment& environment_;
  const std::uint64_t id_;
  const std::uint64_t sdpSessionId_;  // o= session id in the SDP the SBC sends
  const std::string trunk_;
  const std::vector<policy::IpPrefix> trunkPrefixes_;
  const dataplane::Realm callerRealm_;  // where the initial INVITE came from
  // Names of the headers that cross between the legs: the allow-list, plus
  // P-Asserted-Identity for a trusted trunk.
  std::vector<std::string> passedHeaders_;
  const metrics::CallSeries& series_;    // this trunk's and direction's call metrics
  const std::chrono::steady_clock::time_point received_;  // the initial INVITE's arrival
  bool setupObserved_ = false;
  policy::CallSlot slot_;
  std::optional<SdpDescription> offer_;
  // The last completed offer/answer, per realm (indexed by dataplane::Realm), and an offer
  // in flight inside the dialog with the realm it came from.
  std::array<std::optional<SdpDescription>, dataplane::kRealmCount> described_;
  std::optional<SdpDescription> pendingOffer_;
  dataplane::Realm pendingOfferFrom_ = dataplane::Realm::access;
  std::vector<std::unique_ptr<Relay>> relays_;
  std::vector<std::optional<dataplane::StreamEndpoints>> streams_;  // per m= line
  std::vector<std::size_t> streamsOfPendingOffer_;  // indices opened by the offer in flight
  std::uint64_t sdpVersion_ = 1;
  std::string answerForCaller_;  // the rewritten SDP of the callee's latest answer
  // Per leg (indexed by realm): the CSeq and body of the last 2xx ACK sent, which a 2xx
  // retransmitted after its transaction is gone gets again.
  struct SentAck {
    std::uint32_t cseq = 0;
    OutgoingBody body;
  };
  std::array<SentAck, dataplane::kRealmCount> lastAck_{};
  // Per realm: the SDP of the last completed offer/answer as the SBC sent it on that leg,
  // which a refresh re-INVITE offers again; and whether that leg's peer is refreshed by
  // re-INVITE (it does not take UPDATE).
  std::array<std::string, dataplane::kRealmCount> sdpSentOn_;
  std::array<bool, dataplane::kRealmCount> refreshByInvite_{};
  State state_ = State::calling;
  nta_leg_t* callerLeg_ = nullptr;          // the caller realm's dialog (server side)
  nta_leg_t* calleeLeg_ = nullptr;          // the other realm's dialog (client side)
  nta_incoming_t* callerInvite_ = nullptr;  // the initial INVITE we received
  nta_outgoing_t* calleeInvite_ = nullptr;  // our INVITE to the callee
  std::unique_ptr<SessionTimers> sessionTimers_;
  std::array<SessionRefresh, dataplane::kRealmCount> sessionRefreshes_{};

  // The callee leg's INVITE, kept to re-send it to another hop or with credentials.
  CallRoute route_;
  std::size_t hop_ = 0;  // index into route_.targets
  std::string calleeOffer_;      // the SDP of the callee leg's INVITE
  OutgoingBody calleeInviteBody_;  // its whole body: that SDP and the parts that cross
  std::string calleeHeaders_;  // the caller's INVITE's allow-listed headers
  std::string calleeRequestUri_;
  std::string calledUser_;
  std::string callingUser_;
  // A line's call to the core: the terminal's Request-URI, From and To (URIs only: tags,
  // display names and parameters stay behind) and its Authorization/Proxy-Authorization
  // header lines, all relayed unchanged.
  std::string lineRequestUri_;
  std::string lineFrom_;
  std::string lineTo_;
  std::string lineCredentials_;
  unsigned long hopsLeft_ = 70;  // Max-Forwards of the caller's INVITE
  bool callerTakesReliable_ = false;  // the caller's INVITE supports or requires 100rel
  bool lateOffer_ = false;  // the caller's INVITE had no SDP: the callee offers
  // The late offer came in a reliable provisional response and the caller's PRACK
  // answered it: the ACK need not, and SDP in later responses repeats that offer.
  bool lateOfferAnswered_ = false;
  std::string offerFork_;  // To tag of the fork whose late offer went to the caller
  // The winning fork is a foreign one whose offer still needs the SBC's answer and media.
  bool winnerToAdopt_ = false;
  std::string ackAnswer_;  // SDP the ACK of the callee's 2xx carries for a foreign winner
  std::vector<std::unique_ptr<PrackRelay>> pracks_;
  std::vector<EarlyFork> forks_;
  nta_outgoing_t* calleeUntagged_ = nullptr;  // the INVITE as sent, once narrowed to forks
  bool losingForksEnded_ = false;
  // Challenges of the current hop answered with credentials: the first, and those that only
  // say the nonce went stale (RFC 7616 3.3), up to kMaxChallengeAnswers.
  unsigned challengesAnswered_ = 0;
  Retry retry_ = Retry::none;
  su_timer_t* retryTimer_ = nullptr;
  su_timer_t* cancelledTimer_ = nullptr;  // see awaitCancelledFinal()
  su_home_t* authHome_ = nullptr;  // the digest client state and the credentials headers
  auth_client_t* authClient_ = nullptr;
  msg_header_t* pendingCredentials_ = nullptr;
};

}  // namespace sbc::signaling
