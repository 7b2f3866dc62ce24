
ì	
&test/demo/orders/ordersv1/orders.protomirrorline.demo.orders.v1"H
GetOrderRequest
id (	Rid%
customer_email (	RcustomerEmail"P
ListOrdersRequest%
customer_email (	RcustomerEmail
limit (Rlimit"O
Address
street (	Rstreet
city (	Rcity
country (	Rcountry"Š
Order
id (	Rid%
customer_email (	RcustomerEmail!
amount_cents (RamountCents
currency (	Rcurrency
status (	Rstatus>
shipping (2".mirrorline.demo.orders.v1.AddressRshipping
tags (	Rtags
card_number (	R
cardNumber"F
UploadSummary
count (Rcount
total_cents (R
totalCents"L
	TrackNote
order_id (	RorderId
note (	Rnote
seq (Rseq"M
TrackAck
order_id (	RorderId
seq (Rseq
state (	Rstate2ø
OrdersX
GetOrder*.mirrorline.demo.orders.v1.GetOrderRequest .mirrorline.demo.orders.v1.Order^

ListOrders,.mirrorline.demo.orders.v1.ListOrdersRequest .mirrorline.demo.orders.v1.Order0\
UploadOrders .mirrorline.demo.orders.v1.Order(.mirrorline.demo.orders.v1.UploadSummary(V
Track$.mirrorline.demo.orders.v1.TrackNote#.mirrorline.demo.orders.v1.TrackAck(0BEZCgithub.com/mirrorline/mirrorline/test/demo/orders/ordersv1;ordersv1bproto3